import type { RemovalPolicy } from 'aws-cdk-lib';
import { AttributeType, BillingMode, ProjectionType, StreamViewType, Table } from 'aws-cdk-lib/aws-dynamodb';
import type { Construct } from 'constructs';

export interface IndexSpec {
  name: string;
  partitionKey: string;
  sortKey?: { name: string; type: 'S' | 'N' };
  include: string[];
}

/**
 * A service's single table: (pk, sk) strings, on-demand, streams with new and old images (the
 * outbox), `expiresAt` as TTL attribute, point-in-time recovery.
 */
export function serviceTable(
  scope: Construct,
  id: string,
  options: { indexes?: IndexSpec[]; removalPolicy: RemovalPolicy },
) {
  const table = new Table(scope, id, {
    partitionKey: { name: 'pk', type: AttributeType.STRING },
    sortKey: { name: 'sk', type: AttributeType.STRING },
    billingMode: BillingMode.PAY_PER_REQUEST,
    stream: StreamViewType.NEW_AND_OLD_IMAGES,
    timeToLiveAttribute: 'expiresAt',
    // Every stage: a throwaway stage's tables are small, and so is their recovery's price.
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
    removalPolicy: options.removalPolicy,
  });
  for (const index of options.indexes ?? []) {
    table.addGlobalSecondaryIndex({
      indexName: index.name,
      partitionKey: { name: index.partitionKey, type: AttributeType.STRING },
      ...(index.sortKey
        ? {
            sortKey: {
              name: index.sortKey.name,
              type: index.sortKey.type === 'N' ? AttributeType.NUMBER : AttributeType.STRING,
            },
          }
        : {}),
      projectionType: ProjectionType.INCLUDE,
      nonKeyAttributes: index.include,
    });
  }
  return table;
}
