// Pins the important resources and IAM statements of the CDK app; every configuration must also
// pass cdk-nag's AWS Solutions checks (synth throws on an unacknowledged finding). Synth skips the
// Rust build (EKS_AUTH_CDK_SKIP_BUNDLING), so no cargo-lambda or Docker is needed.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { buildApp, BuiltApp, SKIP_BUNDLING_ENV } from '../lib/app';
import { DENIALS_ONLY, WITH_GRANTED } from '../lib/filter-pattern';

const build = (context: Record<string, unknown>): BuiltApp => buildApp(context, { [SKIP_BUNDLING_ENV]: '1' });

type Statement = { Sid?: string; Action: string | string[]; Resource: unknown; Condition?: Record<string, unknown>; Effect: string };

/** Every statement of every AWS::IAM::Policy and inline role policy in the template. */
function statements(t: Template): Statement[] {
  const out: Statement[] = [];
  for (const p of Object.values(t.findResources('AWS::IAM::Policy'))) out.push(...p.Properties.PolicyDocument.Statement);
  for (const r of Object.values(t.findResources('AWS::IAM::Role'))) {
    for (const p of r.Properties.Policies ?? []) out.push(...p.PolicyDocument.Statement);
  }
  return out;
}
const actions = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);
const bySid = (t: Template, sid: string) => statements(t).find((s) => s.Sid === sid);
const allActions = (t: Template) => statements(t).flatMap(actions);

describe('single cluster, acting as itself', () => {
  const { app, remediator } = build({ clusters: 'prod' });
  const t = Template.fromStack(remediator!);

  it('passes cdk-nag (AwsSolutions) with every finding acknowledged in code', () => {
    assert.doesNotThrow(() => app.synth());
  });

  it('is one arm64 provided.al2023 function with JSON logs and the suppression table', () => {
    t.resourceCountIs('AWS::Lambda::Function', 1);
    t.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'provided.al2023',
      Architectures: ['arm64'],
      Handler: 'bootstrap',
      ReservedConcurrentExecutions: 2,
      LoggingConfig: Match.objectLike({ LogFormat: 'JSON' }),
      Environment: { Variables: Match.objectLike({ EKS_AUTH_SUPPRESSION_TABLE: Match.anyValue(), EKS_AUTH_MAX_EVENTS: '100000' }) },
    });
    const env = Object.values(t.findResources('AWS::Lambda::Function'))[0].Properties.Environment.Variables;
    assert.equal(env.EKS_AUTH_POLICY, undefined, 'no policy: the variable must be absent, not empty');
    assert.equal(env.EKS_AUTH_REMEDIATION_ROLE_ARN, undefined);
  });

  it('subscribes /aws/eks/prod/cluster with the granted-lines pattern', () => {
    t.resourceCountIs('AWS::Logs::SubscriptionFilter', 1);
    t.hasResourceProperties('AWS::Logs::SubscriptionFilter', {
      LogGroupName: '/aws/eks/prod/cluster',
      FilterPattern: WITH_GRANTED,
    });
    t.hasResourceProperties('AWS::Lambda::Permission', { Principal: Match.stringLikeRegexp('logs') });
  });

  it('sends failed async invocations to SQS after two retries, and alarms on errors and the queue', () => {
    t.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      MaximumRetryAttempts: 2,
      DestinationConfig: { OnFailure: { Destination: Match.anyValue() } },
    });
    t.resourceCountIs('AWS::SQS::Queue', 1);
    t.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'Errors', Namespace: 'AWS/Lambda', Threshold: 1 });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'ApproximateNumberOfMessagesVisible', Namespace: 'AWS/SQS' });
    t.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
  });

  it('has the suppression table: pk string, TTL expires_at, on demand', () => {
    t.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      TimeToLiveSpecification: { AttributeName: 'expires_at', Enabled: true },
      BillingMode: 'PAY_PER_REQUEST',
    });
    const s = statements(t).find((x) => actions(x).includes('dynamodb:PutItem'));
    assert.ok(s);
    assert.deepEqual(new Set(actions(s)), new Set(['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem']));
  });

  it('creates only STANDARD access entries and associates only the approved policies and scopes', () => {
    const create = bySid(t, 'CreateStandardAccessEntries');
    assert.deepEqual(create?.Condition, { StringEquals: { 'eks:accessEntryType': 'STANDARD' } });
    const assoc = bySid(t, 'AssociateApprovedAccessPolicies');
    assert.deepEqual(assoc?.Condition, {
      StringEquals: {
        'eks:policyArn': ['arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy'],
        'eks:accessScope': ['cluster', 'namespace'],
      },
    });
    assert.match(JSON.stringify(assoc?.Resource), /access-entry\/prod\/\*/);
    assert.match(JSON.stringify(bySid(t, 'ClusterFacts')?.Resource), /cluster\/prod"/);
  });

  it('scopes the log queries to the cluster log group and grants nothing it does not use', () => {
    assert.match(JSON.stringify(bySid(t, 'ClusterCreatorLookup')?.Resource), /log-group:\/aws\/eks\/prod\/cluster/);
    const used = new Set(allActions(t));
    for (const a of ['sts:AssumeRole', 'sns:Publish', 'events:PutEvents', 'secretsmanager:GetSecretValue', 'eks:DeleteAccessEntry', 'eks:UpdateAccessEntry']) {
      assert.ok(!used.has(a), `unexpected ${a}`);
    }
    for (const s of statements(t)) {
      for (const a of actions(s)) assert.ok(!a.endsWith('*'), `wildcard action ${a}`);
    }
  });
});

describe('several clusters', () => {
  const { remediator } = build({ clusters: 'prod-eu,prod-us,staging', forwardGrantedLines: 'false' });
  const t = Template.fromStack(remediator!);
  it('has one function and one subscription filter per cluster log group', () => {
    t.resourceCountIs('AWS::Lambda::Function', 1);
    t.resourceCountIs('AWS::Logs::SubscriptionFilter', 3);
    for (const c of ['prod-eu', 'prod-us', 'staging']) {
      t.hasResourceProperties('AWS::Logs::SubscriptionFilter', { LogGroupName: `/aws/eks/${c}/cluster`, FilterPattern: DENIALS_ONLY });
    }
    const res = JSON.stringify(bySid(t, 'AssociateApprovedAccessPolicies')?.Resource);
    for (const c of ['prod-eu', 'prod-us', 'staging']) assert.match(res, new RegExp(`access-entry/${c}/\\*`));
  });
});

describe('with a remediation role', () => {
  const roleArn = 'arn:aws:iam::111122223333:role/eks-auth-remediation';
  const { app, remediator } = build({ clusters: 'prod', remediationRoleArn: roleArn, ticketTopicArn: 'arn:aws:sns:eu-west-1:111122223333:tickets', ticketEventBusArn: 'arn:aws:events:eu-west-1:111122223333:event-bus/ops', webhookSecretArn: 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:hook-AbCdEf' });
  const t = Template.fromStack(remediator!);
  it('may only assume that role, and no longer calls IAM or EKS itself', () => {
    assert.doesNotThrow(() => app.synth());
    assert.deepEqual(bySid(t, 'AssumeRemediationRole')?.Resource, roleArn);
    const used = allActions(t);
    assert.ok(!used.some((a) => a.startsWith('eks:') || a.startsWith('iam:')), used.join(' '));
    t.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ EKS_AUTH_REMEDIATION_ROLE_ARN: roleArn }) },
    });
  });
  it('may use exactly the configured ticket sinks', () => {
    assert.equal(bySid(t, 'PublishTickets')?.Resource, 'arn:aws:sns:eu-west-1:111122223333:tickets');
    assert.equal(bySid(t, 'PutTicketEvents')?.Resource, 'arn:aws:events:eu-west-1:111122223333:event-bus/ops');
    assert.equal(bySid(t, 'ReadWebhookSecret')?.Resource, 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:hook-AbCdEf');
  });
});

describe('remediation role stack', () => {
  const { app, remediator, remediationRole } = build({ clusters: 'prod', withRemediationRole: 'true', allowedAccessPolicyArns: 'arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy' });
  it('trusts only the function role and holds the EKS permissions', () => {
    assert.doesNotThrow(() => app.synth());
    assert.ok(remediationRole);
    const r = Template.fromStack(remediationRole);
    const role = Object.values(r.findResources('AWS::IAM::Role'))[0];
    const trust = role.Properties.AssumeRolePolicyDocument.Statement;
    assert.equal(trust.length, 1);
    assert.match(JSON.stringify(trust[0].Principal), /ImportValue|FunctionRole/);
    assert.equal(role.Properties.RoleName, 'EksAuthRemediator-remediation');
    assert.deepEqual(bySid(r, 'AssociateApprovedAccessPolicies')?.Condition, {
      StringEquals: { 'eks:policyArn': ['arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy'], 'eks:accessScope': ['cluster', 'namespace'] },
    });
    const f = Template.fromStack(remediator!);
    assert.match(JSON.stringify(bySid(f, 'AssumeRemediationRole')?.Resource), /role\/EksAuthRemediator-remediation/);
    assert.ok(!allActions(f).some((a) => a.startsWith('eks:')));
  });
});

describe('cross-account receiver', () => {
  const { app, remediator } = build({ clusters: '', crossAccountSourceAccounts: '444455556666,777788889999', remediationRoleArn: 'arn:aws:iam::444455556666:role/eks-auth-remediation' });
  const t = Template.fromStack(remediator!);
  it('is a CloudWatch Logs destination -> Kinesis -> the function', () => {
    assert.doesNotThrow(() => app.synth());
    t.resourceCountIs('AWS::Kinesis::Stream', 1);
    t.resourceCountIs('AWS::Logs::SubscriptionFilter', 0);
    const dest = Object.values(t.findResources('AWS::Logs::Destination'))[0];
    // The policy is a Fn::Join (it names the destination's own ARN); its principals are literal.
    const policy = JSON.stringify(dest.Properties.DestinationPolicy);
    assert.ok(policy.includes('\\"Principal\\":{\\"AWS\\":[\\"444455556666\\",\\"777788889999\\"]}'), policy);
    assert.ok(policy.includes('logs:PutSubscriptionFilter'), policy);
    t.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      StartingPosition: 'TRIM_HORIZON',
      DestinationConfig: { OnFailure: { Destination: Match.anyValue() } },
    });
    t.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: { Statement: [Match.objectLike({ Principal: { Service: 'logs.amazonaws.com' } })] },
    });
  });
});

describe('source account of a cross-account setup', () => {
  const destinationArn = 'arn:aws:logs:eu-west-1:111122223333:destination:EksAuthRemediator-authenticator';
  const { app, remediator, sources } = build({ sourceDestinationArn: destinationArn, sourceClusters: 'team-a,team-b' });
  it('only subscribes its cluster log groups to the destination', () => {
    assert.doesNotThrow(() => app.synth());
    assert.equal(remediator, undefined);
    const t = Template.fromStack(sources!);
    t.resourceCountIs('AWS::Logs::SubscriptionFilter', 2);
    t.hasResourceProperties('AWS::Logs::SubscriptionFilter', { LogGroupName: '/aws/eks/team-b/cluster', DestinationArn: destinationArn, FilterPattern: WITH_GRANTED });
    assert.deepEqual(Object.keys(t.toJSON().Resources).length, 2);
  });
});
