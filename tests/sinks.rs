//! Ticket sinks and suppression end to end, over real sockets: SNS (read back through an SQS
//! subscription), EventBridge (a rule targeting an SQS queue) and DynamoDB on moto; the webhook on
//! a local HTTP/HTTPS server that checks the signature. A ticket is delivered once per window, a
//! redelivered batch is never counted twice, and a sink outage fails the invocation (retryable)
//! with the ticket kept; the retry delivers only where it failed.

#[path = "../sim/tests/support/mod.rs"]
mod support;

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use eks_auth_remediator::edge::Edge;
use eks_auth_remediator::facts::OfflineFacts;
use eks_auth_remediator::handler::{self, Config, Deps, HandlerError, Response};
use eks_auth_remediator::policy::Policy;
use eks_auth_remediator::sinks::webhook::{self, Secret, WebhookSink};
use eks_auth_remediator::sinks::{
    eventbridge, sns, Delivery, Dispatcher, Outgoing, Sink, SinkError, SinkStatus, Suppression,
    TicketStatus,
};
use eks_auth_remediator::suppress::{self, DynamoStore, Store};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

// ---- AWS on moto ---------------------------------------------------------------------------

fn sdk_at(endpoint: &str) -> SdkConfig {
    support::sdk_config(&support::admin_creds())
        .to_builder()
        .endpoint_url(endpoint)
        .build()
}

fn sdk() -> SdkConfig {
    sdk_at(&support::moto().endpoint)
}

/// An SQS JSON-protocol call to moto (the SDK has no SQS crate in this project).
async fn sqs(action: &str, body: Value) -> Value {
    let ep = &support::moto().endpoint;
    let host = ep.trim_start_matches("http://").to_string();
    let body = body.to_string();
    let headers = vec![
        (
            "content-type".to_string(),
            "application/x-amz-json-1.0".to_string(),
        ),
        ("x-amz-target".to_string(), format!("AmazonSQS.{action}")),
        ("host".to_string(), host),
    ];
    let mut h = headers.clone();
    h.extend(eks_sim::sigv4::sign(
        "POST",
        "/",
        "",
        &headers,
        body.as_bytes(),
        support::REGION,
        "sqs",
        &support::admin_creds(),
        support::unix_now(),
    ));
    let reply = eks_sim::client::HttpClient::default()
        .send("POST", &format!("{ep}/"), &h, body.into_bytes())
        .await
        .expect("moto sqs");
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    assert_eq!(reply.status, 200, "SQS {action}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn queue(name: &str) -> (String, String) {
    let url = sqs("CreateQueue", json!({"QueueName": name}))
        .await
        .get("QueueUrl")
        .and_then(Value::as_str)
        .expect("QueueUrl")
        .to_string();
    let arn = sqs(
        "GetQueueAttributes",
        json!({"QueueUrl": url, "AttributeNames": ["QueueArn"]}),
    )
    .await["Attributes"]["QueueArn"]
        .as_str()
        .expect("QueueArn")
        .to_string();
    (url, arn)
}

/// Every message on the queue: waits until `want` arrived (or 5 s), then once more briefly so an
/// extra (duplicate) message would be seen too.
async fn drain(url: &str, want: usize) -> Vec<Value> {
    let mut got = Vec::new();
    let start = Instant::now();
    let mut extra_round = false;
    loop {
        let r = sqs(
            "ReceiveMessage",
            json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 0, "MessageAttributeNames": ["All"]}),
        )
        .await;
        let msgs = r["Messages"].as_array().cloned().unwrap_or_default();
        for m in &msgs {
            sqs(
                "DeleteMessage",
                json!({"QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"]}),
            )
            .await;
        }
        let empty = msgs.is_empty();
        got.extend(msgs);
        if got.len() >= want && (extra_round || want == 0) && empty {
            return got;
        }
        if got.len() >= want {
            extra_round = true;
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        if start.elapsed() > Duration::from_secs(5) {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A topic with an SQS subscription (raw delivery off: the envelope keeps the attributes).
async fn topic_to_queue() -> (String, String) {
    let name = support::unique("tickets");
    let client = aws_sdk_sns::Client::new(&sdk());
    let topic = client
        .create_topic()
        .name(&name)
        .send()
        .await
        .expect("CreateTopic")
        .topic_arn
        .expect("TopicArn");
    let (url, arn) = queue(&format!("{name}-sns")).await;
    client
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(arn)
        .send()
        .await
        .expect("Subscribe");
    (topic, url)
}

/// An event bus with a rule on the documented source and detail-type targeting a queue.
async fn bus_to_queue() -> (String, String) {
    let name = support::unique("bus");
    let client = aws_sdk_eventbridge::Client::new(&sdk());
    client
        .create_event_bus()
        .name(&name)
        .send()
        .await
        .expect("CreateEventBus");
    let (url, arn) = queue(&format!("{name}-eb")).await;
    client
        .put_rule()
        .name(format!("{name}-rule"))
        .event_bus_name(&name)
        .event_pattern(
            json!({"source": [eventbridge::SOURCE], "detail-type": [eventbridge::DETAIL_TYPE]})
                .to_string(),
        )
        .send()
        .await
        .expect("PutRule");
    client
        .put_targets()
        .rule(format!("{name}-rule"))
        .event_bus_name(&name)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("PutTargets");
    (name, url)
}

/// The shared table schema: `pk` (S) only, TTL on `expires_at`.
async fn table() -> String {
    use aws_sdk_dynamodb::types::TimeToLiveSpecification;
    let name = support::unique("suppression");
    let client = aws_sdk_dynamodb::Client::new(&sdk());
    common::create_suppression_table(&client, &name).await;
    client
        .update_time_to_live()
        .table_name(&name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("expires_at")
                .enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("UpdateTimeToLive");
    name
}

async fn item(
    table: &str,
    ticket_id: &str,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    aws_sdk_dynamodb::Client::new(&sdk())
        .get_item()
        .table_name(table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("ticket#{ticket_id}")),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
        .expect("the ticket's item exists")
}

fn num(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
    k: &str,
) -> i64 {
    item[k]
        .as_n()
        .expect("a number")
        .parse()
        .expect("an integer")
}

// ---- a webhook receiver ----------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Hit {
    headers: http::HeaderMap,
    body: Vec<u8>,
}

/// A webhook receiver answering the statuses in `script` in turn (the last one forever), after
/// `delay`; over TLS with a generated CA when `tls` is set.
struct Hook {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    script: Arc<Mutex<Vec<u16>>>,
    delay: Arc<Mutex<Duration>>,
    ca_pem: Option<String>,
}

impl Hook {
    async fn start(script: &[u16], tls: bool) -> Hook {
        use http_body_util::{BodyExt, Full};
        use hyper_util::rt::TokioIo;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let generated = tls.then(|| eks_sim::tls::Tls::generate().expect("test CA"));
        let url = format!(
            "{}://{addr}/hooks/eks-auth",
            if tls { "https" } else { "http" }
        );
        let hits = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.to_vec()));
        let delay = Arc::new(Mutex::new(Duration::ZERO));
        let acceptor = generated
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.server_config.clone()));
        let (h2, s2, d2) = (hits.clone(), script.clone(), delay.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (h3, s3, d3, acc) = (h2.clone(), s2.clone(), d2.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let (h4, s4, d4) = (h3.clone(), s3.clone(), d3.clone());
                            async move {
                                let headers = req.headers().clone();
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                let status = {
                                    let mut s = s4.lock().unwrap();
                                    if s.len() > 1 {
                                        s.remove(0)
                                    } else {
                                        s[0]
                                    }
                                };
                                h4.lock().unwrap().push(Hit {
                                    headers,
                                    body: body.to_vec(),
                                });
                                let delay = *d4.lock().unwrap();
                                tokio::time::sleep(delay).await;
                                Ok::<_, std::convert::Infallible>(
                                    http::Response::builder()
                                        .status(status)
                                        .body(Full::new(bytes::Bytes::from_static(b"{}")))
                                        .unwrap(),
                                )
                            }
                        },
                    );
                    let conn = hyper::server::conn::http1::Builder::new();
                    match acc {
                        Some(acc) => {
                            if let Ok(tls) = acc.accept(stream).await {
                                let _ = conn.serve_connection(TokioIo::new(tls), svc).await;
                            }
                        }
                        None => {
                            let _ = conn.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                });
            }
        });
        Hook {
            url,
            hits,
            script,
            delay,
            ca_pem: generated.map(|t| t.ca_pem),
        }
    }

    fn answer(&self, status: u16) {
        *self.script.lock().unwrap() = vec![status];
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// rustls trusting only this hook's CA (or the system roots for plain http).
    fn tls(&self) -> rustls::ClientConfig {
        let Some(pem) = &self.ca_pem else {
            return webhook::system_tls().unwrap_or_else(|_| {
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
            });
        };
        use base64::Engine;
        let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(der)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(der))
            .unwrap();
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
    }

    fn sink(&self, secret: Option<&str>, timeout: Duration, retries: u32) -> WebhookSink {
        WebhookSink::new(
            &self.url,
            secret.map_or(Secret::None, |s| Secret::Static(s.to_string().into())),
            timeout,
            retries,
            self.tls(),
        )
        .expect("webhook sink")
        .with_backoff(Duration::from_millis(20))
    }
}

/// The receiver's check, as the README documents it.
fn verify(secret: &str, hit: &Hit) -> bool {
    let ts = hit.headers["x-eks-auth-timestamp"].to_str().unwrap();
    let sig = hit.headers["x-eks-auth-signature"].to_str().unwrap();
    let Some(hex) = sig.strip_prefix("sha256=") else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(&hit.body);
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    want == hex && (support::unix_now() as i64 - ts.parse::<i64>().unwrap()).abs() < 300
}

// ---- events and the handler ----------------------------------------------------------------

/// A CloudWatch Logs subscription event with `ids.len()` denials of `user` on cluster prod.
fn event(user: &str, ids: &[&str]) -> Value {
    let events: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({"id": id, "timestamp": 1_700_000_000_000i64 + i as i64, "message": format!(
                r#"time="2023-11-14T22:13:2{i}Z" level=warning msg="access denied" arn="arn:aws:iam::123456789012:user/{user}" client="127.0.0.1:5000{i}" error="ARN is not mapped" method=POST path=/authenticate"#
            )})
        })
        .collect();
    json!({"messageType": "DATA_MESSAGE", "owner": "123456789012",
        "logGroup": "/aws/eks/prod/cluster", "logStream": "authenticator-0123456789abcdef",
        "subscriptionFilters": ["eks-auth"], "logEvents": events})
}

fn deps(delivery: Delivery) -> Deps<Edge> {
    Deps {
        delivery,
        ..Deps::new(
            Config {
                region: Some(support::REGION.into()),
                ..Config::default()
            },
            Edge::Offline(OfflineFacts),
        )
    }
}

async fn invoke(d: &Deps<Edge>, ev: &Value) -> Result<Response, HandlerError> {
    handler::handle_value(ev, d).await
}

fn policy_with_tickets(tickets: &str) -> Policy {
    Policy::parse(
        &format!("clusters: [prod]\nrules: []\ntickets:\n{tickets}"),
        "test policy",
    )
    .expect("valid policy")
}

// ---- tests -----------------------------------------------------------------------------------

#[tokio::test]
async fn each_sink_gets_the_ticket_once_and_later_batches_are_counted() {
    let (topic, sns_queue) = topic_to_queue().await;
    let (bus, eb_queue) = bus_to_queue().await;
    let table = table().await;
    let hook = Hook::start(&[200], false).await;
    let secret_var = format!("EKS_AUTH_TEST_SECRET_{}", std::process::id());
    std::env::set_var(&secret_var, "s3cret-for-tests");
    let policy = policy_with_tickets(&format!(
        "  suppression_window: 1h\n  sinks:\n    sns: {{topic_arn: \"{topic}\"}}\n    eventbridge: {{event_bus: {bus}}}\n    webhook: {{url: \"{}\", secret_env: {secret_var}, timeout: 5s, retries: 2}}\n",
        hook.url
    ));
    let dispatcher = Dispatcher::from_policy(&sdk(), policy.tickets(), Some(table.clone()))
        .expect("sinks from the policy");
    assert_eq!(dispatcher.sink_names(), ["sns", "eventbridge", "webhook"]);
    let d = deps(Delivery::Enabled(dispatcher));
    let user = support::unique("alice");

    // First batch: opened, delivered to all three sinks.
    let first = invoke(&d, &event(&user, &["e1", "e2"]))
        .await
        .expect("delivered");
    assert_eq!(first.tickets.len(), 1);
    let ticket = &first.tickets[0];
    let ticket_json: Value = serde_json::to_value(ticket).unwrap();
    let del = &first.delivery;
    assert_eq!(
        (del.enabled, del.suppression),
        (true, Suppression::Dynamodb)
    );
    assert_eq!(del.table.as_deref(), Some(table.as_str()));
    assert_eq!((del.opened, del.suppressed, del.sink_failures), (1, 0, 0));
    assert_eq!(del.tickets[0].status, TicketStatus::Opened);
    assert_eq!(del.tickets[0].occurrences, 2);
    assert!(
        del.sinks.iter().all(|s| s.status == SinkStatus::Delivered),
        "{:?}",
        del.sinks
    );
    assert_eq!(del.sinks.len(), 3);

    // SNS: the ticket JSON, the attributes filter policies use, the subject.
    let msgs = drain(&sns_queue, 1).await;
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    let envelope: Value = serde_json::from_str(msgs[0]["Body"].as_str().unwrap()).unwrap();
    let message: Value = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
    assert_eq!(message, ticket_json);
    assert_eq!(envelope["Subject"], sns::subject(&ticket.title));
    let attrs = &envelope["MessageAttributes"];
    assert_eq!(attrs["cause"]["Value"], "not_mapped");
    assert_eq!(attrs["cause"]["Type"], "String");
    assert_eq!(attrs["severity"]["Value"], ticket_json["severity"]);
    assert_eq!(attrs["cluster"]["Value"], "prod");
    assert_eq!(attrs["ticket_id"]["Value"], ticket.id.as_str());

    // EventBridge: the documented source and detail-type, the ticket as detail.
    let msgs = drain(&eb_queue, 1).await;
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    let ev: Value = serde_json::from_str(msgs[0]["Body"].as_str().unwrap()).unwrap();
    assert_eq!(ev["source"], "eks-auth-remediator");
    assert_eq!(ev["detail-type"], "EKS Auth Ticket");
    assert_eq!(ev["detail"], ticket_json);

    // Webhook: signed body, the exact ticket JSON.
    let hits = hook.hits();
    assert_eq!(hits.len(), 1);
    assert!(verify("s3cret-for-tests", &hits[0]), "signature verifies");
    assert!(!verify("another-secret", &hits[0]));
    assert_eq!(
        serde_json::from_slice::<Value>(&hits[0].body).unwrap(),
        ticket_json
    );
    assert_eq!(hits[0].headers["x-eks-auth-ticket-id"], ticket.id.as_str());
    assert_eq!(hits[0].headers["content-type"], "application/json");

    let it = item(&table, &ticket.id).await;
    assert_eq!(num(&it, "occurrences"), 2);
    assert_eq!(num(&it, "expires_at") - num(&it, "opened_at"), 3600);
    let mut delivered = it["delivered"].as_ss().unwrap().clone();
    delivered.sort();
    assert_eq!(delivered, ["eventbridge", "sns", "webhook"]);

    // A second batch within the window: suppressed and counted, delivered nowhere.
    let second = invoke(&d, &event(&user, &["e3", "e4", "e5"]))
        .await
        .expect("ok");
    assert_eq!((second.delivery.opened, second.delivery.suppressed), (0, 1));
    assert_eq!(second.delivery.tickets[0].status, TicketStatus::Suppressed);
    assert_eq!(second.delivery.tickets[0].occurrences, 5);
    assert!(second.delivery.sinks.is_empty());
    assert_eq!(second.tickets.len(), 1, "the response still has the ticket");
    assert_eq!(num(&item(&table, &ticket.id).await, "occurrences"), 5);

    // The same second batch redelivered (a Lambda retry): not counted again.
    let again = invoke(&d, &event(&user, &["e3", "e4", "e5"]))
        .await
        .expect("ok");
    assert_eq!(again.delivery.tickets[0].status, TicketStatus::Duplicate);
    assert_eq!(num(&item(&table, &ticket.id).await, "occurrences"), 5);
    // ... and neither is the first one.
    let again = invoke(&d, &event(&user, &["e1", "e2"])).await.expect("ok");
    assert_eq!(again.delivery.tickets[0].status, TicketStatus::Reopened);
    assert!(again
        .delivery
        .sinks
        .iter()
        .all(|s| s.status == SinkStatus::Skipped));
    assert_eq!(num(&item(&table, &ticket.id).await, "occurrences"), 5);

    // Nothing more reached any sink.
    assert!(drain(&sns_queue, 0).await.is_empty());
    assert!(drain(&eb_queue, 0).await.is_empty());
    assert_eq!(hook.hits().len(), 1);
}

/// The webhook is down (500): the invocation fails (retryable) naming the sink and the ticket, the
/// ticket is in the error's response; SNS got it. After the webhook is back, the retry of the same
/// batch delivers to the webhook only.
#[tokio::test]
async fn a_webhook_outage_fails_the_invocation_and_the_retry_delivers_once() {
    let (topic, sns_queue) = topic_to_queue().await;
    let (bus, eb_queue) = bus_to_queue().await;
    let table = table().await;
    let hook = Hook::start(&[500], false).await;
    let policy = policy_with_tickets(&format!(
        "  sinks:\n    sns: {{topic_arn: \"{topic}\"}}\n    eventbridge: {{event_bus: {bus}}}\n"
    ));
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    let base = Dispatcher::from_policy(&sdk(), policy.tickets(), None).unwrap();
    assert_eq!(base.sink_names(), ["sns", "eventbridge"]);
    sinks.push(Box::new(sns::SnsSink::new(
        aws_sdk_sns::Client::new(&sdk()),
        topic.clone(),
    )));
    sinks.push(Box::new(eventbridge::EventBridgeSink::new(
        aws_sdk_eventbridge::Client::new(&sdk()),
        bus.clone(),
    )));
    sinks.push(Box::new(hook.sink(None, Duration::from_secs(5), 1)));
    let store: Box<dyn Store> = Box::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk()),
        table.clone(),
    ));
    let d = deps(Delivery::Enabled(Dispatcher::new(
        sinks,
        Some(store),
        Duration::from_secs(3600),
    )));
    let ev = event(&support::unique("bob"), &["b1"]);

    let err = invoke(&d, &ev).await.expect_err("the webhook is down");
    assert_eq!(err.error_type(), "Retryable.TicketDelivery");
    let HandlerError::TicketDelivery { summary, response } = &err else {
        panic!("{err:?}")
    };
    let ticket_id = response.tickets[0].id.clone();
    assert!(
        summary.contains("webhook") && summary.contains(&ticket_id),
        "{summary}"
    );
    assert!(summary.contains("HTTP 500 after 2 attempt(s)"), "{summary}");
    let diag = lambda_runtime::Diagnostic::from(err);
    assert_eq!(diag.error_type, "Retryable.TicketDelivery");
    assert_eq!(hook.hits().len(), 2, "one retry");

    // The webhook is back; Lambda retries the same event.
    hook.answer(200);
    let retry = invoke(&d, &ev).await.expect("the retry delivers");
    assert_eq!(retry.delivery.tickets[0].status, TicketStatus::Reopened);
    let by_sink: Vec<(&str, SinkStatus)> = retry
        .delivery
        .sinks
        .iter()
        .map(|s| (s.sink, s.status))
        .collect();
    assert_eq!(
        by_sink,
        [
            ("sns", SinkStatus::Skipped),
            ("eventbridge", SinkStatus::Skipped),
            ("webhook", SinkStatus::Delivered)
        ]
    );
    assert_eq!(hook.hits().len(), 3);
    assert_eq!(drain(&sns_queue, 1).await.len(), 1, "no duplicate on SNS");
    assert_eq!(
        drain(&eb_queue, 1).await.len(),
        1,
        "no duplicate on EventBridge"
    );
    // A further retry delivers nothing.
    let r = invoke(&d, &ev).await.expect("ok");
    assert!(r
        .delivery
        .sinks
        .iter()
        .all(|s| s.status == SinkStatus::Skipped));
    assert_eq!(hook.hits().len(), 3);
}

/// SNS is down (its endpoint answers 500, or nothing listens): the invocation fails; with SNS
/// back, the retry publishes once and the webhook, which had the ticket, gets nothing more.
#[tokio::test]
async fn an_sns_outage_is_retried_without_duplicates_elsewhere() {
    let (topic, sns_queue) = topic_to_queue().await;
    let table = table().await;
    let hook = Hook::start(&[200], false).await;
    let broken = support::StsStub::start(500, "{}").await;
    let dispatcher = |sns_endpoint: &str| {
        let sinks: Vec<Box<dyn Sink>> = vec![
            Box::new(hook.sink(None, Duration::from_secs(5), 0)),
            Box::new(sns::SnsSink::new(
                aws_sdk_sns::Client::new(&sdk_at(sns_endpoint)),
                topic.clone(),
            )),
        ];
        let store: Box<dyn Store> = Box::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&sdk()),
            table.clone(),
        ));
        deps(Delivery::Enabled(Dispatcher::new(
            sinks,
            Some(store),
            Duration::from_secs(3600),
        )))
    };
    let ev = event(&support::unique("carol"), &["c1", "c2"]);

    let err = invoke(&dispatcher(&broken.endpoint), &ev)
        .await
        .expect_err("SNS is down");
    let HandlerError::TicketDelivery { summary, response } = &err else {
        panic!("{err:?}")
    };
    assert!(summary.starts_with("sns for EAR-"), "{summary}");
    assert_eq!(response.delivery.sink_failures, 1);
    assert_eq!(response.tickets.len(), 1, "the ticket is kept");
    assert!(!broken.seen.lock().unwrap().is_empty(), "SNS was called");
    // A stopped server fails the same way.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let err = invoke(&dispatcher(&closed), &ev)
        .await
        .expect_err("nobody listens");
    assert_eq!(err.error_type(), "Retryable.TicketDelivery");

    let ok = invoke(&dispatcher(&support::moto().endpoint), &ev)
        .await
        .expect("SNS is back");
    let statuses: Vec<SinkStatus> = ok.delivery.sinks.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [SinkStatus::Skipped, SinkStatus::Delivered]);
    assert_eq!(hook.hits().len(), 1, "the webhook got the ticket once");
    assert_eq!(drain(&sns_queue, 1).await.len(), 1, "SNS got it once");
}

/// A DynamoDB store that holds the race two invocations can run in one order: it says when its
/// first read has returned, and holds its first write until told to go. moto serves requests on
/// threads and checks a write's condition without a lock, so two writes racing there for real can
/// both pass (DynamoDB's cannot); forcing the order makes the loser's write meet the winner's
/// item, which is the case to test.
struct Gated {
    inner: DynamoStore,
    read: Arc<tokio::sync::Notify>,
    go: Arc<tokio::sync::Notify>,
    first_read: std::sync::atomic::AtomicBool,
    first_write: std::sync::atomic::AtomicBool,
}

impl Store for Gated {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn get<'a>(
        &'a self,
        pk: &'a str,
    ) -> suppress::BoxFuture<'a, Result<Option<suppress::TicketState>, suppress::StoreError>> {
        Box::pin(async move {
            let r = self.inner.get(pk).await;
            if self
                .first_read
                .swap(false, std::sync::atomic::Ordering::SeqCst)
            {
                self.read.notify_one();
            }
            r
        })
    }

    fn write<'a>(
        &'a self,
        pk: &'a str,
        ticket_id: &'a str,
        write: &'a suppress::Write,
    ) -> suppress::BoxFuture<'a, Result<bool, suppress::StoreError>> {
        Box::pin(async move {
            if self
                .first_write
                .swap(false, std::sync::atomic::Ordering::SeqCst)
            {
                self.go.notified().await;
            }
            self.inner.write(pk, ticket_id, write).await
        })
    }

    fn mark_delivered<'a>(
        &'a self,
        pk: &'a str,
        opened_at: i64,
        sink: &'a str,
    ) -> suppress::BoxFuture<'a, Result<(), suppress::StoreError>> {
        self.inner.mark_delivered(pk, opened_at, sink)
    }
}

/// Two invocations with different batches race for the same new ticket: one opens, one counts.
/// The first reads the ticket absent, then the second opens and delivers it before the first
/// writes: the first's conditional write fails, and it reads again and counts its batch.
#[tokio::test]
async fn concurrent_first_occurrences_open_once() {
    let table = table().await;
    let hook = Hook::start(&[200], false).await;
    let dynamo = || DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk()), table.clone());
    let make = |store: Box<dyn Store>| {
        deps(Delivery::Enabled(Dispatcher::new(
            vec![Box::new(hook.sink(None, Duration::from_secs(5), 0))],
            Some(store),
            Duration::from_secs(3600),
        )))
    };
    let (read, go) = (
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(tokio::sync::Notify::new()),
    );
    let a = make(Box::new(Gated {
        inner: dynamo(),
        read: read.clone(),
        go: go.clone(),
        first_read: true.into(),
        first_write: true.into(),
    }));
    let b = make(Box::new(dynamo()));
    let user = support::unique("dave");
    let (ea, eb) = (event(&user, &["d1"]), event(&user, &["d2", "d3"]));
    let race = async {
        tokio::join!(invoke(&a, &ea), async {
            read.notified().await;
            let rb = invoke(&b, &eb).await;
            go.notify_one();
            rb
        })
    };
    // The gates wait on each other: a store that never reads would hang them.
    let (ra, rb) = tokio::time::timeout(Duration::from_secs(60), race)
        .await
        .expect("the gated race finishes");
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!((rb.delivery.opened, rb.delivery.suppressed), (1, 0));
    assert_eq!((ra.delivery.opened, ra.delivery.suppressed), (0, 1));
    assert_eq!(hook.hits().len(), 1);
    assert_eq!(
        num(&item(&table, &ra.tickets[0].id).await, "occurrences"),
        3
    );
}

#[tokio::test]
async fn without_a_table_suppression_is_per_invocation_and_plan_never_delivers() {
    let hook = Hook::start(&[200], false).await;
    let d = deps(Delivery::Enabled(Dispatcher::new(
        vec![Box::new(hook.sink(None, Duration::from_secs(5), 0))],
        None,
        Duration::from_secs(3600),
    )));
    let ev = event(&support::unique("erin"), &["x1"]);
    let r = invoke(&d, &ev).await.unwrap();
    assert_eq!(r.delivery.suppression, Suppression::Invocation);
    assert!(r
        .delivery
        .note
        .as_deref()
        .unwrap()
        .contains(suppress::ENV_TABLE));
    assert_eq!(hook.hits().len(), 1);

    let plan = Deps {
        dry_run_only: true,
        ..d
    };
    let r = invoke(&plan, &ev).await.unwrap();
    assert!(!r.delivery.enabled);
    assert!(r.delivery.note.as_deref().unwrap().contains("plan"));
    assert_eq!(hook.hits().len(), 1, "plan delivered nothing");
}

// ---- the webhook alone -----------------------------------------------------------------------

async fn post(sink: &WebhookSink) -> Result<(), SinkError> {
    let line = r#"time="2022-12-28T15:37:19Z" level=warning msg="access denied" arn="arn:aws:iam::111122223333:user/zed" error="ARN is not mapped""#;
    let mut agg = eks_auth_remediator::diagnosis::Aggregator::new();
    agg.add(&Default::default(), None, None, line);
    let (f, _) = agg.finish();
    let t = eks_auth_remediator::ticket::build(&f[0]);
    let json = serde_json::to_string(&t).unwrap();
    sink.deliver(&Outgoing {
        ticket: &t,
        json: &json,
        opened_at: 1,
    })
    .await
}

#[tokio::test]
async fn webhook_retries_5xx_not_4xx_and_honours_the_timeout() {
    let hook = Hook::start(&[500, 502, 200], false).await;
    post(&hook.sink(Some("k"), Duration::from_secs(5), 3))
        .await
        .expect("third attempt succeeds");
    assert_eq!(hook.hits().len(), 3);
    assert!(hook.hits().iter().all(|h| verify("k", h)));

    let hook = Hook::start(&[500], false).await;
    let err = post(&hook.sink(None, Duration::from_secs(5), 2))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SinkError::Status {
                status: 500,
                attempts: 3
            }
        ),
        "{err}"
    );
    assert_eq!(hook.hits().len(), 3);
    assert!(!hook.hits()[0].headers.contains_key("x-eks-auth-signature"));

    let hook = Hook::start(&[400], false).await;
    let err = post(&hook.sink(None, Duration::from_secs(5), 3))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SinkError::Status {
                status: 400,
                attempts: 1
            }
        ),
        "{err}"
    );
    assert_eq!(hook.hits().len(), 1, "4xx is final");

    let hook = Hook::start(&[200], false).await;
    *hook.delay.lock().unwrap() = Duration::from_secs(5);
    let start = Instant::now();
    let err = post(&hook.sink(None, Duration::from_secs(1), 0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SinkError::Transport { attempts: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("no answer within"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/", l.local_addr().unwrap())
    };
    let sink = WebhookSink::new(&closed, Secret::None, Duration::from_secs(2), 1, hook.tls())
        .unwrap()
        .with_backoff(Duration::from_millis(10));
    let err = post(&sink).await.unwrap_err();
    assert!(
        matches!(err, SinkError::Transport { attempts: 2, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn webhook_over_https_with_a_private_ca() {
    let hook = Hook::start(&[200], true).await;
    assert!(hook.url.starts_with("https://"));
    post(&hook.sink(Some("tls-key"), Duration::from_secs(5), 0))
        .await
        .expect("TLS handshake with the test CA");
    assert!(verify("tls-key", &hook.hits()[0]));

    // Not trusting that CA fails the handshake (no silent plain-text fallback).
    let untrusting = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let sink = WebhookSink::new(
        &hook.url,
        Secret::None,
        Duration::from_secs(5),
        0,
        untrusting,
    )
    .unwrap();
    let err = post(&sink).await.unwrap_err();
    assert!(matches!(err, SinkError::Transport { .. }), "{err}");
    assert_eq!(hook.hits().len(), 1);
}

/// `secret_arn`: the key is read from Secrets Manager on the first delivery and cached for the
/// container's life (a later change of the secret is not seen until a new container starts).
#[tokio::test]
async fn webhook_secret_from_secrets_manager_is_read_once() {
    let hook = Hook::start(&[200], false).await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk());
    let arn = sm
        .create_secret()
        .name(support::unique("hook-key"))
        .secret_string("from-secrets-manager")
        .send()
        .await
        .expect("CreateSecret")
        .arn
        .expect("ARN");
    let policy = policy_with_tickets(&format!(
        "  sinks:\n    webhook: {{url: \"{}\", secret_arn: \"{arn}\"}}\n",
        hook.url
    ));
    let d = deps(Delivery::Enabled(
        Dispatcher::from_policy(&sdk(), policy.tickets(), None).expect("sinks"),
    ));
    invoke(&d, &event(&support::unique("frank"), &["f1"]))
        .await
        .expect("delivered");
    sm.put_secret_value()
        .secret_id(&arn)
        .secret_string("rotated")
        .send()
        .await
        .expect("PutSecretValue");
    invoke(&d, &event(&support::unique("grace"), &["g1"]))
        .await
        .expect("delivered");
    let hits = hook.hits();
    assert_eq!(hits.len(), 2);
    assert!(hits.iter().all(|h| verify("from-secrets-manager", h)));

    // An unreadable secret is a sink failure (retryable), not a lost ticket.
    let policy = policy_with_tickets(&format!(
        "  sinks:\n    webhook: {{url: \"{}\", secret_arn: \"arn:aws:secretsmanager:{}:{}:secret:missing-AbCdEf\"}}\n",
        hook.url,
        support::REGION,
        support::ACCOUNT
    ));
    let d = deps(Delivery::Enabled(
        Dispatcher::from_policy(&sdk(), policy.tickets(), None).expect("sinks"),
    ));
    let err = invoke(&d, &event(&support::unique("heidi"), &["h1"]))
        .await
        .expect_err("no such secret");
    assert!(
        err.to_string().contains("secretsmanager:GetSecretValue"),
        "{err}"
    );
    assert_eq!(hook.hits().len(), 2);
}

/// `eks-auth invoke` builds the sinks from the policy: a failing webhook prints the response (with
/// the ticket) and exits 2 naming the sink; `--offline` and `plan` deliver nothing.
#[tokio::test]
async fn the_cli_delivers_and_reports_failures() {
    let hook = Hook::start(&[503], false).await;
    let dir = support::scratch("sinks-cli");
    let policy = support::write(
        &dir,
        "policy.yaml",
        &format!(
            "clusters: [prod]\nrules: []\ntickets:\n  sinks:\n    webhook: {{url: \"{}\", retries: 0}}\n",
            hook.url
        ),
    );
    let ev = support::write(
        &dir,
        "event.json",
        &event(&support::unique("ivan"), &["i1"]).to_string(),
    );
    let run = move |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend([ev.to_str().unwrap(), "--policy", policy.to_str().unwrap()]);
        std::process::Command::new(env!("CARGO_BIN_EXE_eks-auth"))
            .args(&all)
            .env("AWS_ENDPOINT_URL", &support::moto().endpoint)
            .env("AWS_REGION", support::REGION)
            .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
            .env(
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            )
            .env_remove("EKS_AUTH_SUPPRESSION_TABLE")
            .env_remove("EKS_AUTH_OFFLINE")
            .output()
            .unwrap()
    };
    let out = run(&["invoke", "--offline"]);
    assert!(out.status.success());
    let resp: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(resp["delivery"]["enabled"], false);
    let out = run(&["plan"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        hook.hits().is_empty(),
        "neither --offline nor plan delivers"
    );

    let out = tokio::task::spawn_blocking(move || run(&["invoke"]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ticket delivery failed: webhook for EAR-"),
        "{stderr}"
    );
    let resp: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(resp["tickets"].as_array().unwrap().len(), 1);
    assert_eq!(resp["delivery"]["sinks"][0]["status"], "failed");
    assert_eq!(resp["delivery"]["suppression"], "invocation");
    assert_eq!(hook.hits().len(), 1);
}

/// PutEvents can answer 200 and still reject the entry (`FailedEntryCount`): a sink failure.
#[tokio::test]
async fn a_rejected_eventbridge_entry_is_a_failure() {
    let stub = support::StsStub::start(
        200,
        r#"{"FailedEntryCount":1,"Entries":[{"ErrorCode":"InternalFailure","ErrorMessage":"try again"}]}"#,
    )
    .await;
    let d = deps(Delivery::Enabled(Dispatcher::new(
        vec![Box::new(eventbridge::EventBridgeSink::new(
            aws_sdk_eventbridge::Client::new(&sdk_at(&stub.endpoint)),
            "default".into(),
        ))],
        None,
        Duration::from_secs(3600),
    )));
    let err = invoke(&d, &event(&support::unique("judy"), &["j1"]))
        .await
        .expect_err("rejected");
    assert!(
        err.to_string()
            .contains("PutEvents rejected the entry: InternalFailure: try again"),
        "{err}"
    );
    let seen = stub.seen.lock().unwrap();
    assert!(seen.iter().any(|s| s
        .headers
        .iter()
        .any(|(k, v)| k == "x-amz-target" && v.ends_with("PutEvents"))));
}

/// The suppression table unreachable: nothing is delivered (it could be a duplicate), the ticket
/// is kept and the invocation fails retryably.
#[tokio::test]
async fn an_unreachable_table_delivers_nothing_and_fails_retryably() {
    let hook = Hook::start(&[200], false).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let store: Box<dyn Store> = Box::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk_at(&closed)),
        "eks-auth-state",
    ));
    let d = deps(Delivery::Enabled(Dispatcher::new(
        vec![Box::new(hook.sink(None, Duration::from_secs(5), 0))],
        Some(store),
        Duration::from_secs(3600),
    )));
    let err = invoke(&d, &event(&support::unique("ken"), &["k1"]))
        .await
        .expect_err("no table");
    assert_eq!(err.error_type(), "Retryable.TicketDelivery");
    let HandlerError::TicketDelivery { summary, response } = &err else {
        panic!("{err:?}")
    };
    assert!(
        summary.contains("suppression store for EAR-") && summary.contains("dynamodb:GetItem"),
        "{summary}"
    );
    assert_eq!(response.delivery.store_failures, 1);
    assert_eq!(response.delivery.tickets[0].status, TicketStatus::Error);
    assert_eq!(response.tickets.len(), 1);
    assert!(hook.hits().is_empty());
}
