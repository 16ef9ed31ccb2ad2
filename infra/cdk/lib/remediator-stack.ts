// The eks-auth-remediator stack: the same resources and permissions as infra/sam/template.yaml,
// for any number of clusters (one function, one subscription filter per cluster log group), and
// optionally a cross-account receiver (CloudWatch Logs destination -> Kinesis -> the function).
import * as path from 'node:path';
import { CfnOutput, CfnResource, Duration, RemovalPolicy, Stack, StackProps, Token, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as lambdaDestinations from 'aws-cdk-lib/aws-lambda-destinations';
import { KinesisEventSource, SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as logsDestinations from 'aws-cdk-lib/aws-logs-destinations';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { RustFunction } from 'cargo-lambda-cdk';
import { Construct } from 'constructs';
import { DENIALS_ONLY, WITH_GRANTED } from './filter-pattern';

/** The repository root: the crate whose binary `eks-auth-remediator` is the function. */
export const CRATE_DIR = path.resolve(__dirname, '..', '..', '..', '..');

export interface CrossAccountProps {
  /** Accounts whose cluster log groups may subscribe to the destination. */
  readonly sourceAccountIds: string[];
  /** Shards of the Kinesis stream (default 1: about 1 MB/s of authenticator lines). */
  readonly shardCount?: number;
}

export interface RemediatorStackProps extends StackProps {
  /** Clusters in this account and region: one subscription filter on each /aws/eks/<name>/cluster. */
  readonly clusters: string[];
  /** The approval policy document (EKS_AUTH_POLICY). Lambda's environment is limited to 4 KB. */
  readonly policyDocument?: string;
  /** An SSM String parameter holding the policy, resolved at deploy time (no SSM call at run time). */
  readonly policySsmParameterName?: string;
  /** A role to assume for IAM/EKS/Kubernetes calls; without it the function's own role gets them. */
  readonly remediationRoleArn?: string;
  /** Access policies the approval policy may grant (eks:policyArn). */
  readonly allowedAccessPolicyArns?: string[];
  /** Access scope types the rules use (eks:accessScope). */
  readonly allowedAccessScopes?: string[];
  /** Ticket sinks named in the policy (tickets.sinks.*): IAM for each one given. */
  readonly ticketTopicArn?: string;
  readonly ticketEventBusArn?: string;
  readonly webhookSecretArn?: string;
  /** SNS topic for the error and dead-letter alarms. */
  readonly alarmTopicArn?: string;
  /** Also forward `access granted` lines (incident detection). Default true. */
  readonly forwardGrantedLines?: boolean;
  readonly reservedConcurrency?: number;
  readonly timeout?: Duration;
  readonly logRetention?: logs.RetentionDays;
  readonly suppressionTablePointInTimeRecovery?: boolean;
  /** Receive the logs of clusters in other accounts through a CloudWatch Logs destination. */
  readonly crossAccount?: CrossAccountProps;
}

export const DEFAULT_ACCESS_POLICIES = ['arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy'];

export class RemediatorStack extends Stack {
  readonly fn: lambda.Function;
  readonly role: iam.Role;
  readonly failedEvents: sqs.Queue;
  readonly table: dynamodb.Table;
  readonly destinationArn?: string;

  constructor(scope: Construct, id: string, props: RemediatorStackProps) {
    super(scope, id, props);
    if (props.clusters.length === 0 && !props.crossAccount) {
      throw new Error('RemediatorStack: give at least one cluster or crossAccount');
    }
    for (const c of props.clusters) {
      if (!/^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$/.test(c)) throw new Error(`invalid cluster name: ${c}`);
    }
    if (props.policyDocument && props.policySsmParameterName) {
      throw new Error('RemediatorStack: policyDocument and policySsmParameterName are exclusive');
    }
    const { partition, region, account } = this;
    const logGroupArn = (c: string) => `arn:${partition}:logs:${region}:${account}:log-group:/aws/eks/${c}/cluster`;
    const clusterArn = (c: string) => `arn:${partition}:eks:${region}:${account}:cluster/${c}`;
    const entryArn = (c: string) => `arn:${partition}:eks:${region}:${account}:access-entry/${c}/*`;

    const logGroup = new logs.LogGroup(this, 'FunctionLogGroup', {
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    checkovSkip(logGroup, 'CKV_AWS_158', 'CloudWatch Logs encrypts at rest by default; tickets carry ARNs and log samples, no secrets, so no customer-managed key is required.');

    this.failedEvents = new sqs.Queue(this, 'FailedEventsQueue', {
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    checkovSkip(this.failedEvents, 'CKV_AWS_27', 'Encrypted at rest with SQS-managed keys (SqsManagedSseEnabled); checkov only recognises a KMS key.');
    Validations.of(this.failedEvents).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is itself the on-failure destination of the function; a queue behind it would only hold what nobody reads.',
    });

    this.table = new dynamodb.Table(this, 'SuppressionTable', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      timeToLiveAttribute: 'expires_at',
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: props.suppressionTablePointInTimeRecovery ?? false },
      removalPolicy: RemovalPolicy.DESTROY,
    });
    checkovSkip(this.table, 'CKV_AWS_119', 'DynamoDB encrypts at rest with an AWS owned key by default; the table holds ticket ids, principals and expiry times only.');
    if (!props.suppressionTablePointInTimeRecovery) {
      checkovSkip(this.table, 'CKV_AWS_28', 'Point-in-time recovery is a prop; the table only suppresses duplicate tickets and is rebuilt from new events.');
      Validations.of(this.table).acknowledge({
        id: 'AwsSolutions-DDB3',
        reason: 'The table only suppresses duplicate tickets for a few hours and is rebuilt from new events; PITR is a prop.',
      });
    }

    this.role = new iam.Role(this, 'FunctionRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `eks-auth-remediator for ${props.clusters.join(', ') || 'cross-account clusters'}`,
    });
    this.role.addToPolicy(new iam.PolicyStatement({
      sid: 'OwnLogs',
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [logGroup.logGroupArn],
    }));
    this.table.grant(this.role, 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem');
    if (props.clusters.length > 0) {
      this.role.addToPolicy(new iam.PolicyStatement({
        sid: 'ClusterCreatorLookup',
        actions: ['logs:StartQuery', 'logs:FilterLogEvents'],
        resources: props.clusters.flatMap((c) => [logGroupArn(c), `${logGroupArn(c)}:*`]),
      }));
      // GetQueryResults and StopQuery take a query id, not a log group: no resource scoping.
      this.role.addToPolicy(new iam.PolicyStatement({
        sid: 'QueryResults',
        actions: ['logs:GetQueryResults', 'logs:StopQuery'],
        resources: ['*'],
      }));
      acknowledgeWildcards(this.role, ['*'],
        'logs:GetQueryResults and logs:StopQuery support no resource-level permissions; they act only on query ids that the log-group-scoped StartQuery returned.');
      acknowledgeWildcards(this.role, props.clusters.map((c) => `${logGroupArn(c)}:*`),
        'The :* suffix is the log-group ARN form IAM uses for its streams; it names exactly the cluster log group (creator lookup).');
    }
    if (props.remediationRoleArn) {
      this.role.addToPolicy(new iam.PolicyStatement({
        sid: 'AssumeRemediationRole',
        actions: ['sts:AssumeRole'],
        resources: [props.remediationRoleArn],
      }));
    } else if (props.clusters.length > 0) {
      for (const s of remediationStatements({
        partition, account,
        clusterArns: props.clusters.map(clusterArn),
        accessEntryArns: props.clusters.map(entryArn),
        allowedAccessPolicyArns: props.allowedAccessPolicyArns ?? DEFAULT_ACCESS_POLICIES,
        allowedAccessScopes: props.allowedAccessScopes ?? ['cluster', 'namespace'],
      })) this.role.addToPolicy(s);
      acknowledgeRemediationWildcards(this.role, partition, account, props.clusters.map(entryArn));
    }
    if (props.ticketTopicArn) {
      this.role.addToPolicy(new iam.PolicyStatement({ sid: 'PublishTickets', actions: ['sns:Publish'], resources: [props.ticketTopicArn] }));
    }
    if (props.ticketEventBusArn) {
      this.role.addToPolicy(new iam.PolicyStatement({ sid: 'PutTicketEvents', actions: ['events:PutEvents'], resources: [props.ticketEventBusArn] }));
    }
    if (props.webhookSecretArn) {
      this.role.addToPolicy(new iam.PolicyStatement({ sid: 'ReadWebhookSecret', actions: ['secretsmanager:GetSecretValue'], resources: [props.webhookSecretArn] }));
    }

    const environment: Record<string, string> = {
      EKS_AUTH_SUPPRESSION_TABLE: this.table.tableName,
      EKS_AUTH_MAX_EVENT_BYTES: '16777216',
      EKS_AUTH_MAX_DECOMPRESSED_BYTES: '33554432',
      EKS_AUTH_MAX_EVENTS: '100000',
    };
    if (props.policyDocument) environment.EKS_AUTH_POLICY = props.policyDocument;
    if (props.policySsmParameterName) environment.EKS_AUTH_POLICY = `{{resolve:ssm:${props.policySsmParameterName}}}`;
    if (props.remediationRoleArn) environment.EKS_AUTH_REMEDIATION_ROLE_ARN = props.remediationRoleArn;
    if (props.policyDocument && Buffer.byteLength(props.policyDocument) > 3500) {
      // Lambda allows 4 KB of environment in total: fail at synth, not at deploy.
      throw new Error(`the policy document is ${Buffer.byteLength(props.policyDocument)} bytes; Lambda's environment holds 4 KB in all: strip comments, or use policySsmParameterName`);
    }

    this.fn = new RustFunction(this, 'Function', {
      manifestPath: path.join(CRATE_DIR, 'Cargo.toml'),
      binaryName: 'eks-auth-remediator',
      architecture: lambda.Architecture.ARM_64,
      description: 'EKS Unauthorized remediator',
      memorySize: 256,
      timeout: props.timeout ?? Duration.minutes(2),
      reservedConcurrentExecutions: props.reservedConcurrency ?? 2,
      role: this.role,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
      systemLogLevelV2: lambda.SystemLogLevel.WARN,
      environment,
      retryAttempts: 2,
      maxEventAge: Duration.hours(6),
      onFailure: new lambdaDestinations.SqsDestination(this.failedEvents),
    });

    checkovSkip(this.fn, 'CKV_AWS_117', "The function calls public AWS APIs and the cluster's endpoint; put it in a VPC only where the cluster endpoint is private.");
    checkovSkip(this.fn, 'CKV_AWS_173', 'The environment holds no secret (the policy and resource names); the webhook secret stays in Secrets Manager.');
    checkovSkip(this.fn, 'CKV_AWS_116', 'Failed async invocations go to the SQS on-failure destination (EventInvokeConfig), which records the error as well as the event.');

    const pattern = logs.FilterPattern.literal(props.forwardGrantedLines === false ? DENIALS_ONLY : WITH_GRANTED);
    for (const c of props.clusters) {
      new logs.SubscriptionFilter(this, `Subscription-${c}`, {
        logGroup: logs.LogGroup.fromLogGroupName(this, `ClusterLog-${c}`, `/aws/eks/${c}/cluster`),
        destination: new logsDestinations.LambdaDestination(this.fn),
        filterPattern: pattern,
      });
    }

    if (props.crossAccount) {
      this.destinationArn = this.crossAccountReceiver(props.crossAccount);
    }

    const alarmAction = props.alarmTopicArn
      ? new cwActions.SnsAction(sns.Topic.fromTopicArn(this, 'AlarmTopic', props.alarmTopicArn))
      : undefined;
    const errors = this.fn.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }).createAlarm(this, 'ErrorsAlarm', {
      alarmDescription: 'eks-auth-remediator invocations failed; failed events go to the on-failure queue after retries.',
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    const dlq = this.failedEvents.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: 'Maximum' })
      .createAlarm(this, 'FailedEventsAlarm', {
        alarmDescription: 'eks-auth-remediator: events that failed every retry wait in the on-failure queue.',
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    if (alarmAction) {
      errors.addAlarmAction(alarmAction);
      dlq.addAlarmAction(alarmAction);
    }

    this.dashboard(props.clusters);

    new CfnOutput(this, 'FunctionName', { value: this.fn.functionName, description: 'The function.' });
    new CfnOutput(this, 'FunctionRoleArn', {
      value: this.role.roleArn,
      description: 'Without a remediation role this role edits aws-auth: give it access (infra/README.md). With one, deploy the remediation role trusting this ARN.',
    });
    new CfnOutput(this, 'FailedEventsQueueUrl', { value: this.failedEvents.queueUrl, description: 'Events that failed all retries, with the error.' });
    new CfnOutput(this, 'NextSteps', {
      value: 'Enable authenticator logging on each cluster (aws eks update-cluster-config --logging ...authenticator...), read the function log for "ticket" records (the policy starts in dry-run), then grant the acting role access and set mode: enforce.',
    });
  }

  /** CloudWatch Logs destination -> Kinesis stream -> the function, for other accounts' clusters. */
  private crossAccountReceiver(x: CrossAccountProps): string {
    const stream = new kinesis.Stream(this, 'CrossAccountStream', {
      shardCount: x.shardCount ?? 1,
      retentionPeriod: Duration.hours(24),
      encryption: kinesis.StreamEncryption.MANAGED,
    });
    const putRole = new iam.Role(this, 'DestinationRole', {
      assumedBy: new iam.ServicePrincipal('logs.amazonaws.com', {
        conditions: { StringLike: { 'aws:SourceArn': x.sourceAccountIds.map((a) => `arn:${this.partition}:logs:${this.region}:${a}:*`) } },
      }),
      description: 'CloudWatch Logs puts subscribed authenticator lines into the cross-account stream',
    });
    stream.grantWrite(putRole);
    const destinationName = `${this.stackName}-authenticator`;
    const destination = new logs.CfnDestination(this, 'CrossAccountDestination', {
      destinationName,
      roleArn: putRole.roleArn,
      targetArn: stream.streamArn,
      destinationPolicy: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{
          Sid: 'SourceAccountsSubscribe',
          Effect: 'Allow',
          Principal: { AWS: x.sourceAccountIds },
          Action: 'logs:PutSubscriptionFilter',
          Resource: `arn:${this.partition}:logs:${this.region}:${this.account}:destination:${destinationName}`,
        }],
      }),
    });
    destination.node.addDependency(putRole);
    this.fn.addEventSource(new KinesisEventSource(stream, {
      startingPosition: lambda.StartingPosition.TRIM_HORIZON,
      batchSize: 100,
      retryAttempts: 2,
      bisectBatchOnError: true,
      reportBatchItemFailures: false,
      onFailure: new SqsDlq(this.failedEvents),
    }));
    new CfnOutput(this, 'DestinationArn', {
      value: destination.attrArn,
      description: 'In each source account: aws logs put-subscription-filter --log-group-name /aws/eks/<cluster>/cluster --filter-name eks-auth-remediator --filter-pattern <pattern> --destination-arn <this> (or the SourceSubscriptionStack).',
    });
    return destination.attrArn;
  }

  private dashboard(clusters: string[]): void {
    const ns = 'EKSAuthRemediator';
    const m = (metricName: string, dimensionsMap?: Record<string, string>, statistic = 'Sum') =>
      new cloudwatch.Metric({ namespace: ns, metricName, dimensionsMap, statistic, period: Duration.minutes(5) });
    const d = new cloudwatch.Dashboard(this, 'Dashboard', { dashboardName: `${this.stackName}-eks-auth-remediator` });
    d.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Denials by cause',
        width: 12,
        left: [new cloudwatch.MathExpression({
          expression: `SEARCH('{${ns},Cluster,Cause} MetricName="Denials"', 'Sum', 300)`,
          label: '',
          period: Duration.minutes(5),
        })],
      }),
      new cloudwatch.GraphWidget({
        title: 'Remediations and tickets',
        width: 12,
        left: [m('RemediationsApplied'), m('RemediationsRefused'), m('TicketsOpened'), m('TicketsSuppressed'),
          ...clusters.map((c) => m('Incidents', { Cluster: c }))],
      }),
      new cloudwatch.GraphWidget({
        title: 'Sink failures and parse failures',
        width: 12,
        left: [new cloudwatch.MathExpression({
          expression: `SEARCH('{${ns},Sink} MetricName="SinkFailures"', 'Sum', 300)`,
          label: '',
          period: Duration.minutes(5),
        }), m('ParseFailures')],
      }),
      new cloudwatch.GraphWidget({
        title: 'Function',
        width: 12,
        left: [m('InvocationLatency', undefined, 'p99'), this.fn.metricErrors(), this.fn.metricThrottles(),
          this.failedEvents.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum' })],
      }),
    );
  }
}

export interface RemediationStatementsProps {
  readonly partition: string;
  readonly account: string;
  readonly clusterArns: string[];
  readonly accessEntryArns: string[];
  readonly allowedAccessPolicyArns: string[];
  readonly allowedAccessScopes: string[];
}

/** What the acting identity (function role or remediation role) needs for facts and changes. */
export function remediationStatements(p: RemediationStatementsProps): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid: 'IamFacts',
      actions: ['iam:GetRole', 'iam:GetUser'],
      resources: [`arn:${p.partition}:iam::${p.account}:role/*`, `arn:${p.partition}:iam::${p.account}:user/*`],
    }),
    new iam.PolicyStatement({ sid: 'ClusterFacts', actions: ['eks:DescribeCluster', 'eks:ListAccessEntries'], resources: p.clusterArns }),
    new iam.PolicyStatement({
      sid: 'AccessEntryFacts',
      actions: ['eks:DescribeAccessEntry', 'eks:ListAssociatedAccessPolicies'],
      resources: p.accessEntryArns,
    }),
    new iam.PolicyStatement({
      sid: 'CreateStandardAccessEntries',
      actions: ['eks:CreateAccessEntry'],
      resources: p.clusterArns,
      conditions: { StringEquals: { 'eks:accessEntryType': 'STANDARD' } },
    }),
    new iam.PolicyStatement({
      sid: 'TagAccessEntriesOnCreate',
      actions: ['eks:TagResource'],
      resources: p.accessEntryArns,
      conditions: { 'ForAllValues:StringEquals': { 'aws:TagKeys': ['managed-by', 'eks-auth-remediator/ticket'] } },
    }),
    new iam.PolicyStatement({
      sid: 'AssociateApprovedAccessPolicies',
      actions: ['eks:AssociateAccessPolicy'],
      resources: p.accessEntryArns,
      conditions: { StringEquals: { 'eks:policyArn': p.allowedAccessPolicyArns, 'eks:accessScope': p.allowedAccessScopes } },
    }),
  ];
}

/** The form cdk-nag gives a resource in a finding id: pseudo-parameter tokens as <AWS::Name>. */
export function nagForm(scope: Construct, resource: string): string {
  const stack = Stack.of(scope);
  let out = resource;
  for (const [value, name] of [[stack.partition, 'Partition'], [stack.region, 'Region'], [stack.account, 'AccountId']]) {
    if (Token.isUnresolved(value)) out = out.split(value).join(`<AWS::${name}>`);
  }
  return out;
}

/** Acknowledges AwsSolutions-IAM5 for exactly these wildcard resources, with the reason. */
export function acknowledgeWildcards(scope: Construct, resources: string[], reason: string): void {
  for (const r of resources) {
    Validations.of(scope).acknowledge({ id: `AwsSolutions-IAM5[Resource::${nagForm(scope, r)}]`, reason });
  }
}

/** The justified wildcards of remediationStatements(). */
export function acknowledgeRemediationWildcards(scope: Construct, partition: string, account: string, accessEntryArns: string[]): void {
  acknowledgeWildcards(scope, [`arn:${partition}:iam::${account}:role/*`, `arn:${partition}:iam::${account}:user/*`],
    'iam:GetRole/GetUser (read-only) on any role or user of this account: the principal is whoever was denied, known only at run time.');
  acknowledgeWildcards(scope, accessEntryArns,
    'Access entries of the named clusters only; the entry is per denied principal, known at run time. Writes are fenced by eks:policyArn/eks:accessScope and aws:TagKeys conditions.');
}

/** A checkov skip with its reason, in the resource's CloudFormation Metadata (checkov reads it there). */
export function checkovSkip(construct: Construct, id: string, comment: string): void {
  const res = construct.node.defaultChild as CfnResource;
  const meta = (res.getMetadata('checkov') as { skip: { id: string; comment: string }[] } | undefined) ?? { skip: [] };
  meta.skip.push({ id, comment });
  res.addMetadata('checkov', meta);
}
