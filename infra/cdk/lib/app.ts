// Builds the CDK app from context values (cdk.json, or `-c key=value`), with cdk-nag's AWS
// Solutions checks on every stack. Shared by bin/app.ts and the tests.
import * as fs from 'node:fs';
import { App, Aws, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { RemediationRoleStack } from './remediation-role-stack';
import { RemediatorStack } from './remediator-stack';
import { SourceSubscriptionStack } from './source-subscription-stack';

/** Set to 1 to synthesize without building the Rust function (no cargo-lambda, no Docker). */
export const SKIP_BUNDLING_ENV = 'EKS_AUTH_CDK_SKIP_BUNDLING';

export interface BuiltApp {
  readonly app: App;
  /** Absent when the app is synthesized for a source account (sourceDestinationArn). */
  readonly remediator?: RemediatorStack;
  readonly remediationRole?: RemediationRoleStack;
  readonly sources?: SourceSubscriptionStack;
}

const list = (v: unknown): string[] | undefined =>
  v === undefined || v === '' ? undefined : Array.isArray(v) ? v.map(String) : String(v).split(',').map((s) => s.trim()).filter(Boolean);
const str = (v: unknown): string | undefined => (v === undefined || v === '' ? undefined : String(v));

/**
 * Context keys: clusters (comma list), policyFile (a policy document inlined at synth) or
 * policySsmParameterName, remediationRoleArn, allowedAccessPolicyArns, allowedAccessScopes,
 * ticketTopicArn, ticketEventBusArn, webhookSecretArn, alarmTopicArn, forwardGrantedLines,
 * crossAccountSourceAccounts (comma list: adds the Kinesis receiver), withRemediationRole (true:
 * also a RemediationRoleStack trusting the function's role, in the same account).
 */
export function buildApp(context: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = process.env): BuiltApp {
  const skip = env[SKIP_BUNDLING_ENV] === '1' || env[SKIP_BUNDLING_ENV] === 'true';
  const app = new App({ context: { '@aws-cdk/core:defaultCrossStackReferences': 'strong', ...context } });
  // Set after construction: the CDK CLI passes its own aws:cdk:bundling-stacks (["**"]) in the
  // environment, which wins over constructor context.
  if (skip) app.node.setContext('aws:cdk:bundling-stacks', []);
  const ctx = (k: string) => app.node.tryGetContext(k);
  const clusters = list(ctx('clusters')) ?? [];
  const policyFile = str(ctx('policyFile'));
  const sourceAccounts = list(ctx('crossAccountSourceAccounts'));
  const stackEnv = { account: env.CDK_DEFAULT_ACCOUNT, region: env.CDK_DEFAULT_REGION };
  const stackName = str(ctx('stackName')) ?? 'EksAuthRemediator';
  const withRole = String(ctx('withRemediationRole') ?? 'false') === 'true';
  // The remediation role has a fixed name, so the function names its ARN without a cycle (the
  // role trusts the function's role; the function assumes the role).
  const roleName = `${stackName}-remediation`;
  const destinationArn = str(ctx('sourceDestinationArn'));
  if (destinationArn) {
    // A source account of a cross-account setup (deployed with that account's credentials):
    // only the subscriptions of its clusters to the receiver's destination.
    const sources = new SourceSubscriptionStack(app, `${stackName}-Sources`, {
      env: stackEnv,
      clusters: list(ctx('sourceClusters')) ?? clusters,
      destinationArn,
      forwardGrantedLines: String(ctx('forwardGrantedLines') ?? 'true') !== 'false',
    });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    return { app, sources };
  }
  const remediator = new RemediatorStack(app, stackName, {
    env: stackEnv,
    clusters,
    policyDocument: policyFile ? fs.readFileSync(policyFile, 'utf8') : undefined,
    policySsmParameterName: str(ctx('policySsmParameterName')),
    remediationRoleArn: withRole ? `arn:${Aws.PARTITION}:iam::${Aws.ACCOUNT_ID}:role/${roleName}` : str(ctx('remediationRoleArn')),
    allowedAccessPolicyArns: list(ctx('allowedAccessPolicyArns')),
    allowedAccessScopes: list(ctx('allowedAccessScopes')),
    ticketTopicArn: str(ctx('ticketTopicArn')),
    ticketEventBusArn: str(ctx('ticketEventBusArn')),
    webhookSecretArn: str(ctx('webhookSecretArn')),
    alarmTopicArn: str(ctx('alarmTopicArn')),
    forwardGrantedLines: String(ctx('forwardGrantedLines') ?? 'true') !== 'false',
    crossAccount: sourceAccounts ? { sourceAccountIds: sourceAccounts } : undefined,
  });
  let remediationRole: RemediationRoleStack | undefined;
  if (withRole) {
    remediationRole = new RemediationRoleStack(app, `${stackName}-RemediationRole`, {
      env: stackEnv,
      roleName,
      functionRoleArn: remediator.role.roleArn,
      clusters,
      allowedAccessPolicyArns: list(ctx('allowedAccessPolicyArns')),
      allowedAccessScopes: list(ctx('allowedAccessScopes')),
    });
  }
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, remediator, remediationRole };
}
