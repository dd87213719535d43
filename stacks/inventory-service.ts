import { Duration, Validations, type RemovalPolicy } from 'aws-cdk-lib';
import type { Table } from 'aws-cdk-lib/aws-dynamodb';
import { Rule, Schedule, type CfnRule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import type { Queue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import {
  ACTIVE_BY_EXPIRY_INDEX,
  PRODUCTS_BY_SKU_INDEX,
  RESERVATIONS_BY_SKU_INDEX,
} from '../functions/inventory/inventory-repository.ts';
import { STOCK_CHANGES_FILTER } from '../functions/inventory/stock-changes.ts';
import { SCHEDULE_SECONDS_METADATA, ServiceFunction, type Invoker } from './service-function.ts';
import { serviceTable } from './service-table.ts';
import { streamFailureQueue, tableStreamSource } from './stream-source.ts';

const TABLE_VARIABLE = 'INVENTORY_TABLE_NAME';

export interface InventoryServiceProps {
  removalPolicy: RemovalPolicy;
  reservationTtlSeconds: number;
  sweepIntervalSeconds: number;
  /** Reserved concurrency of each saga task (reserve, confirm, release); unset: shared. */
  taskConcurrency?: number;
}

/**
 * The inventory service: stock, reservations with a TTL, the sweeper that expires them, and the
 * reactions to its own stream (line index, TTL deletes, low-stock alerts).
 */
export class InventoryService extends Construct {
  readonly table: Table;
  readonly putProduct: ServiceFunction;
  readonly getProduct: ServiceFunction;
  readonly listProducts: ServiceFunction;
  readonly adjustStock: ServiceFunction;
  readonly reserve: ServiceFunction;
  readonly confirm: ServiceFunction;
  readonly release: ServiceFunction;
  readonly sweeper: ServiceFunction;
  readonly sweepSchedule: Rule;
  readonly listReservations: ServiceFunction;
  readonly trackStockChanges: ServiceFunction;
  /** Stream batches the stock-change reactions gave up on. */
  readonly stockChangeFailures: Queue;

  constructor(scope: Construct, id: string, props: InventoryServiceProps) {
    super(scope, id);
    this.table = serviceTable(this, 'Table', {
      removalPolicy: props.removalPolicy,
      indexes: [
        {
          name: ACTIVE_BY_EXPIRY_INDEX,
          partitionKey: 'activeShard',
          sortKey: { name: 'activeUntil', type: 'N' },
          include: ['orderId'],
        },
        {
          name: RESERVATIONS_BY_SKU_INDEX,
          partitionKey: 'lineSku',
          sortKey: { name: 'lineSort', type: 'S' },
          include: [
            'reservationId',
            'orderId',
            'sku',
            'quantity',
            'status',
            'holdUntil',
            'createdAt',
            'updatedAt',
          ],
        },
        {
          // Sparse (only products carry `catalogue`), and it projects only `kind`, which never
          // changes: stock moves never write this index, whose one partition then takes only new
          // products. GET /products reads the SKUs here and the products from the table.
          name: PRODUCTS_BY_SKU_INDEX,
          partitionKey: 'catalogue',
          sortKey: { name: 'sku', type: 'S' },
          include: ['kind'],
        },
      ],
    });
    const environment = { RESERVATION_TTL_SECONDS: String(props.reservationTtlSeconds) };
    const fn = (
      name: string,
      entry: string,
      description: string,
      access: 'read' | 'readWrite',
      invokedBy: Invoker,
      indexes: string[] = [],
    ) =>
      new ServiceFunction(this, name, {
        entry,
        service: 'inventory',
        description,
        environment,
        invokedBy,
        ...(invokedBy === 'saga' && props.taskConcurrency
          ? { reservedConcurrency: props.taskConcurrency }
          : {}),
      }).bindTable(this.table, TABLE_VARIABLE, access, indexes);
    this.putProduct = fn(
      'PutProduct',
      'functions/inventory/put-product.ts',
      'PUT /products/{sku}',
      'readWrite',
      'api',
    );
    this.getProduct = fn(
      'GetProduct',
      'functions/inventory/get-product.ts',
      'GET /products/{sku}',
      'read',
      'api',
    );
    this.listProducts = fn(
      'ListProducts',
      'functions/inventory/list-products.ts',
      'GET /products',
      'read',
      'api',
      [PRODUCTS_BY_SKU_INDEX],
    );
    this.adjustStock = fn(
      'AdjustStock',
      'functions/inventory/adjust-stock.ts',
      'POST /products/{sku}/stock-adjustments',
      'readWrite',
      'api',
    );
    this.reserve = fn(
      'ReserveStock',
      'functions/inventory/reserve-stock.ts',
      'Saga task: reserve every line',
      'readWrite',
      'saga',
    );
    this.confirm = fn(
      'ConfirmStock',
      'functions/inventory/confirm-stock.ts',
      'Saga task: reservation becomes a sale',
      'readWrite',
      'saga',
    );
    this.release = fn(
      'ReleaseStock',
      'functions/inventory/release-stock.ts',
      'Saga compensation: return stock',
      'readWrite',
      'saga',
    );
    this.sweeper = fn(
      'SweepReservations',
      'functions/inventory/sweep-reservations.ts',
      'Release expired reservations',
      'readWrite',
      'schedule',
      [ACTIVE_BY_EXPIRY_INDEX],
    );

    this.listReservations = fn(
      'ListReservations',
      'functions/inventory/list-reservations.ts',
      'GET /inventory/reservations',
      'read',
      'api',
      [RESERVATIONS_BY_SKU_INDEX],
    );
    this.trackStockChanges = fn(
      'TrackStockChanges',
      'functions/inventory/track-stock-changes.ts',
      'Inventory stream: reservation line index, TTL deletes, low-stock alerts',
      'readWrite',
      'stream',
    );
    this.stockChangeFailures = streamFailureQueue(this, 'StockChangeFailures');
    this.trackStockChanges.function.addEventSource(
      tableStreamSource(this.table, { filter: STOCK_CHANGES_FILTER, onFailure: this.stockChangeFailures }),
    );

    // EventBridge rates are whole minutes; the local runtime's timer honours seconds.
    this.sweepSchedule = new Rule(this, 'SweepSchedule', {
      description: 'Releases reservations past their time-to-live',
      schedule: Schedule.rate(Duration.minutes(Math.max(1, Math.ceil(props.sweepIntervalSeconds / 60)))),
      targets: [new LambdaFunction(this.sweeper.function, { retryAttempts: 2 })],
    });
    Validations.of(this.sweepSchedule).acknowledge({
      id: 'Serverless-EventBusDLQ',
      reason:
        'A sweep that cannot be delivered is replaced by the next one a minute later (each sweeps everything expired); a queue of missed ticks would be noise',
    });
    // The local runtime's timer reads the interval in seconds from the template's Metadata (node
    // metadata would only reach the cloud assembly).
    (this.sweepSchedule.node.defaultChild as CfnRule).addMetadata(
      SCHEDULE_SECONDS_METADATA,
      props.sweepIntervalSeconds,
    );
  }
}
