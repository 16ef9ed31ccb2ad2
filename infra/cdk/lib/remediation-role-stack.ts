// The optional remediation role (as infra/sam/remediation-role.yaml): the only identity that reads
// IAM/EKS facts and changes access entries or aws-auth, trusting exactly the function's role.
import { CfnOutput, Stack, StackProps } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { acknowledgeRemediationWildcards, DEFAULT_ACCESS_POLICIES, remediationStatements } from './remediator-stack';

export interface RemediationRoleStackProps extends StackProps {
  /** The function's role ARN (FunctionRoleArn output), the only trusted principal. */
  readonly functionRoleArn: string;
  /** Fixed name, so the function stack can name the role's ARN without depending on this stack. */
  readonly roleName: string;
  /** Clusters of this account and region the role may change. */
  readonly clusters: string[];
  readonly allowedAccessPolicyArns?: string[];
  readonly allowedAccessScopes?: string[];
}

export class RemediationRoleStack extends Stack {
  readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: RemediationRoleStackProps) {
    super(scope, id, props);
    const { partition, region, account } = this;
    this.role = new iam.Role(this, 'RemediationRole', {
      roleName: props.roleName,
      assumedBy: new iam.ArnPrincipal(props.functionRoleArn),
      description: 'eks-auth-remediator remediation role (facts and approved access changes)',
    });
    const accessEntryArns = props.clusters.map((c) => `arn:${partition}:eks:${region}:${account}:access-entry/${c}/*`);
    for (const s of remediationStatements({
      partition, account,
      clusterArns: props.clusters.map((c) => `arn:${partition}:eks:${region}:${account}:cluster/${c}`),
      accessEntryArns,
      allowedAccessPolicyArns: props.allowedAccessPolicyArns ?? DEFAULT_ACCESS_POLICIES,
      allowedAccessScopes: props.allowedAccessScopes ?? ['cluster', 'namespace'],
    })) this.role.addToPolicy(s);
    acknowledgeRemediationWildcards(this.role, partition, account, accessEntryArns);
    new CfnOutput(this, 'RemediationRoleArn', {
      value: this.role.roleArn,
      description: 'Set as remediationRoleArn of the function stack and remediation_role_arn in the policy; map it in each CONFIG_MAP cluster with infra/k8s/aws-auth-editor-rbac.yaml.',
    });
  }
}
