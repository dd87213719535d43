import { Duration, type RemovalPolicy } from 'aws-cdk-lib';
import type { Table } from 'aws-cdk-lib/aws-dynamodb';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { BY_PAYMENT_INTENT_INDEX } from '../functions/payments/payment-repository.ts';
import { ServiceFunction, type Invoker } from './service-function.ts';
import { serviceTable } from './service-table.ts';

const TABLE_VARIABLE = 'PAYMENTS_TABLE_NAME';

export interface PaymentsServiceProps {
  removalPolicy: RemovalPolicy;
  /** The Stripe secret key (`sk_…`): the functions that call Stripe read it, the webhook does not. */
  apiKeySecret: ISecret;
  /**
   * The webhook endpoint's signing secret (`whsec_…`; during a rotation both, comma-separated,
   * docs/payments.md): the webhook alone reads it.
   */
  webhookSecret: ISecret;
  /** The customer-managed KMS key the two secrets are encrypted with, when not AWS's own. */
  secretsKey?: IKey;
  /** Another Stripe API base (a Stripe emulator, for LocalStack); unset means Stripe itself. */
  stripeApiUrl?: string;
  /** Reserved concurrency of each saga task; unset: shared. */
  taskConcurrency?: number;
  /** Reserved concurrency of the webhook, so a flood of webhooks cannot starve the saga; unset: shared. */
  webhookConcurrency?: number;
}

/** The payments service: Stripe PaymentIntents, the webhook, refunds. */
export class PaymentsService extends Construct {
  readonly table: Table;
  readonly createPayment: ServiceFunction;
  readonly requestPayment: ServiceFunction;
  readonly resolvePayment: ServiceFunction;
  readonly cancelPayment: ServiceFunction;
  readonly customerPayment: ServiceFunction;
  readonly refundCharge: ServiceFunction;
  readonly webhook: ServiceFunction;

  constructor(scope: Construct, id: string, props: PaymentsServiceProps) {
    super(scope, id);
    this.table = serviceTable(this, 'Table', {
      removalPolicy: props.removalPolicy,
      indexes: [{ name: BY_PAYMENT_INTENT_INDEX, partitionKey: 'paymentIntentId', include: ['orderId'] }],
    });
    const environment = props.stripeApiUrl ? { STRIPE_API_URL: props.stripeApiUrl } : undefined;
    const withApiKey = (
      name: string,
      entry: string,
      description: string,
      invokedBy: Invoker,
      timeout = Duration.seconds(30),
    ) =>
      new ServiceFunction(this, name, {
        entry,
        service: 'payments',
        description,
        invokedBy,
        ...(environment ? { environment } : {}),
        timeout,
        ...(invokedBy === 'saga' && props.taskConcurrency
          ? { reservedConcurrency: props.taskConcurrency }
          : {}),
      }).readSecret(props.apiKeySecret, 'STRIPE_API_KEY_SECRET_ARN', props.secretsKey);
    this.createPayment = withApiKey(
      'CreatePayment',
      'functions/payments/create-payment.ts',
      'Saga step: create the PaymentIntent, answer its client secret',
      'saga',
    ).bindTable(this.table, TABLE_VARIABLE, 'readWrite');
    this.requestPayment = withApiKey(
      'RequestPayment',
      'functions/payments/request-payment.ts',
      "Saga callback step: confirm with the order's payment method, wait for the webhook",
      'saga',
    ).bindTable(this.table, TABLE_VARIABLE, 'readWrite');
    this.resolvePayment = withApiKey(
      'ResolvePayment',
      'functions/payments/resolve-payment.ts',
      'Saga step after the payment timeout: ask Stripe whether it was paid, else cancel',
      'saga',
    ).bindTable(this.table, TABLE_VARIABLE, 'readWrite');
    this.cancelPayment = withApiKey(
      'CancelPayment',
      'functions/payments/cancel-payment.ts',
      'Saga compensation: cancel or refund',
      'saga',
    ).bindTable(this.table, TABLE_VARIABLE, 'readWrite');
    this.customerPayment = withApiKey(
      'CustomerPayment',
      'functions/payments/customer-payment.ts',
      "Invoked by the orders service: cancel the order's PaymentIntent for its customer, or read its client secret",
      'function',
    ).bindTable(this.table, TABLE_VARIABLE, 'readWrite');
    // Stripe only: the webhook records what the refund did.
    this.refundCharge = withApiKey(
      'RefundCharge',
      'functions/payments/refund-charge.ts',
      "Invoked by the webhook, which holds no API key: refund a PaymentIntent's charge in full, once",
      'function',
      // At most three Stripe calls of 5 s: it answers (or fails) well inside the webhook's 30 s.
      Duration.seconds(20),
    );

    this.webhook = new ServiceFunction(this, 'StripeWebhook', {
      entry: 'functions/payments/stripe-webhook.ts',
      service: 'payments',
      description: 'POST /payments/webhook',
      invokedBy: 'api',
      timeout: Duration.seconds(30),
      ...(props.webhookConcurrency ? { reservedConcurrency: props.webhookConcurrency } : {}),
    })
      .readSecret(props.webhookSecret, 'STRIPE_WEBHOOK_SECRET_ARN', props.secretsKey)
      .bindTable(this.table, TABLE_VARIABLE, 'readWrite', [BY_PAYMENT_INTENT_INDEX]);
    this.refundCharge.invokableBy(this.webhook, 'REFUND_FUNCTION_NAME');
  }
}
