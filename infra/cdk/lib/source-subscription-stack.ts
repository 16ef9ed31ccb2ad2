// For a cross-account setup: deployed in each account that owns clusters, it subscribes every
// cluster log group to the receiver's CloudWatch Logs destination (RemediatorStack crossAccount).
import { Stack, StackProps } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { DENIALS_ONLY, WITH_GRANTED } from './filter-pattern';

export interface SourceSubscriptionStackProps extends StackProps {
  readonly clusters: string[];
  /** The receiver's DestinationArn output. */
  readonly destinationArn: string;
  readonly forwardGrantedLines?: boolean;
}

export class SourceSubscriptionStack extends Stack {
  constructor(scope: Construct, id: string, props: SourceSubscriptionStackProps) {
    super(scope, id, props);
    for (const c of props.clusters) {
      new logs.CfnSubscriptionFilter(this, `Subscription-${c}`, {
        logGroupName: `/aws/eks/${c}/cluster`,
        destinationArn: props.destinationArn,
        filterPattern: props.forwardGrantedLines === false ? DENIALS_ONLY : WITH_GRANTED,
      });
    }
  }
}
