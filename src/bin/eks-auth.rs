//! `eks-auth`: the operator CLI. Explain authenticator lines, run the handler on an event file,
//! and wrap raw lines into events for manual invokes.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use eks_auth_remediator::diagnosis::{self, Aggregator, Origin, Outcome};
use eks_auth_remediator::edge::Edge;
use eks_auth_remediator::facts::OfflineFacts;
use eks_auth_remediator::handler::{self, Config, Deps};
use eks_auth_remediator::policy::Policy;
use eks_auth_remediator::sinks::{self, Delivery};
use eks_auth_remediator::{authlog, eks_token, eventgen, ticket};

#[derive(Parser)]
#[command(
    name = "eks-auth",
    version,
    about = "Diagnose and remediate EKS 'You must be logged in to the server (Unauthorized)' errors"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// What `invoke` and `plan` share.
#[derive(clap::Args)]
struct RunArgs {
    event: PathBuf,
    /// Make no network calls at all (facts are "unknown", nothing is remediated).
    #[arg(long)]
    offline: bool,
    /// Approval policy document (else EKS_AUTH_POLICY / EKS_AUTH_POLICY_FILE; none = tickets only).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// AWS region (else AWS_REGION / the profile).
    #[arg(long)]
    region: Option<String>,
    /// Print the tickets as Markdown instead of the response JSON.
    #[arg(long)]
    markdown: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Explain authenticator log lines: outcome, cause, principal and what to do.
    /// Reads stdin when no LINE is given; a timestamp-only line is joined to the line below.
    Explain {
        /// One JSON object per input line instead of prose.
        #[arg(long)]
        json: bool,
        /// Cluster name to put in recommended commands.
        #[arg(long)]
        cluster: Option<String>,
        /// Region to put in recommended commands.
        #[arg(long)]
        region: Option<String>,
        lines: Vec<String>,
    },
    /// Run the Lambda handler on an event file (`-` for stdin) and print the response JSON.
    /// Uses real AWS (or the endpoints in AWS_ENDPOINT_URL*) unless --offline; changes clusters
    /// only when the policy says `mode: enforce`.
    Invoke {
        #[command(flatten)]
        run: RunArgs,
        /// Also print the CloudWatch EMF metric documents the Lambda function would emit (one
        /// JSON line each) to stderr.
        #[arg(long)]
        metrics: bool,
    },
    /// Like `invoke`, but never writes: shows the plan exactly as enforce would apply it.
    Plan {
        #[command(flatten)]
        run: RunArgs,
    },
    /// Summarise one or more event files offline: causes and principals with counts, first and
    /// last seen, and denials over time as a text histogram. No network call.
    Report {
        #[arg(required = true)]
        events: Vec<PathBuf>,
        /// No ANSI colour (also when stdout is not a terminal, or NO_COLOR is set).
        #[arg(long)]
        no_color: bool,
        /// Output width in columns (else $COLUMNS, else 80).
        #[arg(long)]
        width: Option<usize>,
    },
    /// Print an ExecCredential with a bearer token for the cluster, like `aws eks get-token`
    /// (usable as a kubectl exec credential plugin).
    Token {
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        region: Option<String>,
        /// Act as this role (sts:AssumeRole) instead of the current identity.
        #[arg(long)]
        role_arn: Option<String>,
    },
    /// Wrap raw log lines (FILE or stdin) into an event for manual invokes and `cargo lambda invoke`.
    Event {
        /// Cluster name: the log group becomes /aws/eks/NAME/cluster.
        #[arg(long, default_value = "demo")]
        cluster: String,
        /// Account id for the `owner` field.
        #[arg(long, default_value = "111122223333")]
        account: String,
        /// Region (Kinesis records and manual events carry it).
        #[arg(long, default_value = "us-east-1")]
        region: String,
        /// Event shape to produce.
        #[arg(long, value_enum, default_value_t = Shape::Subscription)]
        format: Shape,
        /// Produce a CONTROL_MESSAGE (reachability probe) instead of data.
        #[arg(long)]
        control: bool,
        file: Option<PathBuf>,
    },
    /// aws-auth manifests in Git: check them, add or remove one mapping keeping every other byte.
    AwsAuth {
        #[command(subcommand)]
        command: eks_auth_remediator::cli_aws_auth::Command,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Shape {
    Subscription,
    Kinesis,
    Decoded,
    Manual,
}

fn main() -> ExitCode {
    eks_auth_remediator::logging::init_cli();
    let cli = Cli::parse();
    if let Cmd::AwsAuth { command } = &cli.command {
        return eks_auth_remediator::cli_aws_auth::run(command);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let first = e.to_string().replace('\n', " ");
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("eks-auth: {}", if msg.is_empty() { first } else { msg });
            ExitCode::from(2)
        }
    }
}

/// `eks-auth ... | head` closes stdout early: not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Explain {
            json,
            cluster,
            region,
            lines,
        } => explain(json, cluster, region, lines),
        Cmd::Invoke { run, metrics } => invoke(run, metrics, false),
        Cmd::Plan { run } => invoke(run, false, true),
        Cmd::Token {
            cluster,
            region,
            role_arn,
        } => token(&cluster, region, role_arn),
        Cmd::Report {
            events,
            no_color,
            width,
        } => report(&events, no_color, width),
        Cmd::Event {
            cluster,
            account,
            region,
            format,
            control,
            file,
        } => {
            let text = if control {
                String::new()
            } else {
                read_input(file.as_deref())?
            };
            let opts = eventgen::Options {
                cluster,
                account,
                region,
                control,
            };
            let out = match format {
                Shape::Subscription => eventgen::subscription(&text, &opts),
                Shape::Kinesis => eventgen::kinesis(&text, &opts),
                Shape::Decoded => eventgen::decoded(&text, &opts),
                Shape::Manual => eventgen::manual(&text, &opts),
            };
            let mut stdout = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut stdout, &out)?;
            writeln!(stdout)?;
            Ok(())
        }
        Cmd::AwsAuth { .. } => unreachable!("handled in main"),
    }
}

fn report(paths: &[PathBuf], no_color: bool, width: Option<usize>) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let limits = eks_auth_remediator::event::Limits::default();
    let mut decoded = Vec::with_capacity(paths.len());
    for p in paths {
        let raw = read_limited(p, limits.max_event_bytes)?;
        decoded.push(
            eks_auth_remediator::event::decode_bytes(&raw, &limits)
                .map_err(|e| anyhow::anyhow!(handler::format_chain(&e)))
                .with_context(|| format!("{}", p.display()))?,
        );
    }
    let (entries, unparsed) = eks_auth_remediator::report::collect(&decoded);
    let color =
        !no_color && std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
    let width = width
        .or_else(|| std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()))
        .unwrap_or(80);
    let out = eks_auth_remediator::report::render(
        &entries,
        unparsed,
        &eks_auth_remediator::report::Options { width, color },
    );
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}

/// Text input for `explain` and `event`: a file, or stdin when none or `-`.
fn read_input(path: Option<&std::path::Path>) -> anyhow::Result<String> {
    let limit = eks_auth_remediator::event::DEFAULT_MAX_EVENT;
    let buf = read_limited(path.unwrap_or(std::path::Path::new("-")), limit)?;
    if buf.len() > limit {
        bail!("input is over the {limit}-byte limit");
    }
    String::from_utf8(buf).context("input is not UTF-8")
}

fn invoke(run: RunArgs, metrics: bool, dry_run_only: bool) -> anyhow::Result<()> {
    let RunArgs {
        event: path,
        offline,
        policy,
        region,
        markdown,
    } = run;
    let started = std::time::Instant::now();
    let mut config = Config::from_env()?;
    if region.is_some() {
        config.region = region.clone();
    }
    let policy = match policy {
        Some(p) => Some(Policy::from_file(&p)?),
        None => handler::policy_from_env()?,
    };
    let raw = read_limited(&path, config.limits.max_event_bytes)?;
    let offline = offline || handler::offline_from_env();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (response, failure) = rt.block_on(async {
        let (mut edge, delivery) = if offline {
            (
                Edge::Offline(OfflineFacts),
                Delivery::Disabled("--offline: tickets are not delivered".into()),
            )
        } else {
            let role = handler::remediation_role(policy.as_ref())?;
            let delivery = if dry_run_only {
                Delivery::Disabled("eks-auth plan never delivers tickets".into())
            } else {
                sinks::delivery_from_env(policy.as_ref(), config.region.as_deref()).await?
            };
            (
                Edge::aws(config.region.as_deref(), role.as_deref()).await?,
                delivery,
            )
        };
        edge.configure(&config);
        let deps = Deps {
            policy,
            dry_run_only,
            delivery,
            ..Deps::new(config, edge)
        };
        match handler::handle_bytes(&raw, &deps).await {
            Ok(r) => Ok((r, None)),
            // The tickets are still printed; the exit status says the delivery failed.
            Err(e @ handler::HandlerError::TicketDelivery { .. }) => {
                let msg = handler::format_chain(&e);
                let handler::HandlerError::TicketDelivery { response, .. } = e else {
                    unreachable!()
                };
                Ok((*response, Some(msg)))
            }
            Err(e) => Err(anyhow::anyhow!(handler::format_chain(&e))),
        }
    })?;
    if metrics {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let docs = eks_auth_remediator::metrics::documents(
            &response,
            None,
            started.elapsed().as_secs_f64() * 1000.0,
            now_ms,
        );
        let mut stderr = std::io::stderr().lock();
        for d in docs {
            writeln!(stderr, "{d}")?;
        }
    }
    let mut stdout = std::io::stdout().lock();
    if markdown {
        for t in &response.tickets {
            writeln!(stdout, "{}", ticket::to_markdown(t))?;
        }
        if response.tickets.is_empty() {
            writeln!(
                stdout,
                "No tickets: {} events, {} findings.",
                response.stats.events,
                response.findings.len()
            )?;
        }
    } else {
        serde_json::to_writer_pretty(&mut stdout, &response)?;
        writeln!(stdout)?;
    }
    if let Some(msg) = failure {
        bail!(msg);
    }
    Ok(())
}

/// Reads at most `limit + 1` bytes (so an oversized input is still detected) from a file or stdin (`-`).
fn read_limited(path: &std::path::Path, limit: usize) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .lock()
            .take(limit as u64 + 1)
            .read_to_end(&mut buf)?;
    } else {
        std::fs::File::open(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .take(limit as u64 + 1)
            .read_to_end(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    Ok(buf)
}

fn token(cluster: &str, region: Option<String>, role_arn: Option<String>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let json = rt.block_on(async {
        let base = eks_auth_remediator::aws::load(region.as_deref()).await?;
        let config = match &role_arn {
            Some(r) => {
                eks_auth_remediator::aws::assume_role(&base, r, "eks-auth-token")
                    .await?
                    .0
            }
            None => base,
        };
        let region = config.region().map(|r| r.to_string()).unwrap_or_default();
        let creds = eks_auth_remediator::aws::credentials(&config).await?;
        let token = eks_token::presign(&creds, &region, cluster, std::time::SystemTime::now())?;
        Ok::<_, anyhow::Error>(eks_token::exec_credential_json(&token))
    })?;
    println!("{json}");
    Ok(())
}

fn explain(
    json: bool,
    cluster: Option<String>,
    region: Option<String>,
    lines: Vec<String>,
) -> anyhow::Result<()> {
    let text = if lines.is_empty() {
        read_input(None)?
    } else {
        lines.join("\n")
    };
    let origin = Origin {
        log_group: cluster.as_deref().map(|c| format!("/aws/eks/{c}/cluster")),
        cluster,
        region,
        ..Origin::default()
    };
    let mut stdout = std::io::stdout().lock();
    let entries = authlog::split_paste(&text);
    if entries.is_empty() {
        bail!("no input lines");
    }
    for entry in entries {
        let shown = entry.replace('\u{1f}', "\n");
        match authlog::parse_entry(&entry) {
            Ok(rec) => {
                let d = diagnosis::diagnose(&rec);
                if json {
                    let mut v = serde_json::to_value(&d)?;
                    if let Some(o) = v.as_object_mut() {
                        o.insert("cause".into(), serde_json::to_value(d.cause)?);
                        o.insert("principal".into(), serde_json::to_value(&d.principal)?);
                        o.insert("summary".into(), d.summary().into());
                        o.insert("format".into(), serde_json::to_value(rec.format)?);
                        o.insert("wrapper".into(), serde_json::to_value(rec.wrapper)?);
                        o.insert("line".into(), shown.into());
                    }
                    writeln!(stdout, "{v}")?;
                } else {
                    writeln!(stdout, "{}", d.summary())?;
                    if matches!(d.outcome, Outcome::Denied | Outcome::ConfigError) {
                        let mut agg = Aggregator::new();
                        agg.add(&origin, None, None, &entry);
                        if let Some(f) = agg.finish().0.first() {
                            let t = ticket::build(f);
                            writeln!(stdout, "\n{}\n\nWhat to do:", t.diagnosis)?;
                            for (i, c) in t.recommended_commands.iter().enumerate() {
                                writeln!(
                                    stdout,
                                    "  {}. {}\n     {}",
                                    i + 1,
                                    c.description,
                                    c.command
                                )?;
                            }
                        }
                    }
                    writeln!(stdout)?;
                }
            }
            Err(e) => {
                if json {
                    let v = serde_json::json!({
                        "outcome": "unparsed", "cause": null, "principal": null,
                        "summary": format!("not an authenticator line: {e}"),
                        "line": shown,
                    });
                    writeln!(stdout, "{v}")?;
                } else {
                    writeln!(stdout, "not an authenticator line ({e}): {shown}\n")?;
                }
            }
        }
    }
    Ok(())
}
