import type { RemovalPolicy } from 'aws-cdk-lib';
import type { Table } from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { ServiceFunction } from './service-function.ts';
import { serviceTable } from './service-table.ts';

const TABLE_VARIABLE = 'ORDERS_TABLE_NAME';

/** The orders service: its table, the HTTP handlers and the saga-step handler. */
export class OrdersService extends Construct {
  readonly table: Table;
  readonly createOrder: ServiceFunction;
  readonly getOrder: ServiceFunction;
  readonly cancelOrder: ServiceFunction;
  readonly sagaStep: ServiceFunction;
  readonly startSagas: ServiceFunction;

  constructor(
    scope: Construct,
    id: string,
    props: { removalPolicy: RemovalPolicy; taskConcurrency?: number },
  ) {
    super(scope, id);
    this.table = serviceTable(this, 'Table', { removalPolicy: props.removalPolicy });
    this.createOrder = new ServiceFunction(this, 'CreateOrder', {
      entry: 'functions/orders/create-order.ts',
      service: 'orders',
      description: 'POST /orders: record the order and start its saga',
      invokedBy: 'api',
    }).bindTable(this.table, TABLE_VARIABLE, 'readWrite');
    this.getOrder = new ServiceFunction(this, 'GetOrder', {
      entry: 'functions/orders/get-order.ts',
      service: 'orders',
      description: 'GET /orders/{orderId}',
      invokedBy: 'api',
    }).bindTable(this.table, TABLE_VARIABLE, 'read');
    this.cancelOrder = new ServiceFunction(this, 'CancelOrder', {
      entry: 'functions/orders/cancel-order.ts',
      service: 'orders',
      description: 'POST /orders/{orderId}/cancel',
      invokedBy: 'api',
    }).bindTable(this.table, TABLE_VARIABLE, 'readWrite');
    this.sagaStep = new ServiceFunction(this, 'SagaStep', {
      entry: 'functions/orders/saga-step.ts',
      service: 'orders',
      description: 'Saga task: move the order one step',
      invokedBy: 'saga',
      ...(props.taskConcurrency ? { reservedConcurrency: props.taskConcurrency } : {}),
    }).bindTable(this.table, TABLE_VARIABLE, 'readWrite');
    this.startSagas = new ServiceFunction(this, 'StartSagas', {
      entry: 'functions/orders/start-sagas.ts',
      service: 'orders',
      description: 'Orders stream (order.created) → start the saga if the request did not',
      invokedBy: 'stream',
    }).bindTable(this.table, TABLE_VARIABLE, 'read');
  }
}
