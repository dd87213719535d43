import { Duration, Stack, type RemovalPolicy } from 'aws-cdk-lib';
import type { Metric } from 'aws-cdk-lib/aws-cloudwatch';
import type { Table } from 'aws-cdk-lib/aws-dynamodb';
import { FilterPattern, MetricFilter, type IFilterPattern } from 'aws-cdk-lib/aws-logs';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { REFUND_FAILED, STRAY_CHARGE_REFUNDED } from '../functions/payments/payment.ts';
import { BY_PAYMENT_INTENT_INDEX } from '../functions/payments/payment-repository.ts';
import { ServiceFunction } from './service-function.ts';
import { serviceTable } from './service-table.ts';

const TABLE_VARIABLE = 'PAYMENTS_TABLE_NAME';

export interface PaymentsServiceProps {
  removalPolicy: RemovalPolicy;
  /**
   * Secrets Manager secret holding {"apiKey": "sk_...", "webhookSecret": "whsec_..."}; during a
   * webhook secret rotation `webhookSecret` lists both, comma-separated (docs/payments.md).
   */
  stripeSecret: ISecret;
  /** Another Stripe API base (a Stripe emulator, for LocalStack); unset means Stripe itself. */
  stripeApiUrl?: string;
}

/** The payments service: Stripe PaymentIntents, the webhook, refunds. */
export class PaymentsService extends Construct {
  readonly table: Table;
  readonly createPayment: ServiceFunction;
  readonly requestPayment: ServiceFunction;
  readonly resolvePayment: ServiceFunction;
  readonly cancelPayment: ServiceFunction;
  readonly customerPayment: ServiceFunction;
  readonly webhook: ServiceFunction;
  /** Webhook deliveries answered 500 (an ERROR log line each); Stripe retries them for up to 3 days. */
  readonly webhookFailures: Metric;
  /** Charges refunded because the payment does not own them: a second intent, or another amount. */
  readonly strayCharges: Metric;
  /** Refunds Stripe reported failed (`refund.failed`): the customer has not got the money back. */
  readonly refundFailures: Metric;

  constructor(scope: Construct, id: string, props: PaymentsServiceProps) {
    super(scope, id);
    this.table = serviceTable(this, 'Table', {
      removalPolicy: props.removalPolicy,
      indexes: [{ name: BY_PAYMENT_INTENT_INDEX, partitionKey: 'paymentIntentId', include: ['orderId'] }],
    });
    const environment = {
      STRIPE_SECRET_ARN: props.stripeSecret.secretArn,
      ...(props.stripeApiUrl ? { STRIPE_API_URL: props.stripeApiUrl } : {}),
    };
    const fn = (name: string, entry: string, description: string) => {
      const created = new ServiceFunction(this, name, {
        entry,
        service: 'payments',
        description,
        environment,
        timeout: Duration.seconds(30),
      }).bindTable(this.table, TABLE_VARIABLE, 'readWrite');
      props.stripeSecret.grantRead(created.function);
      return created;
    };
    this.createPayment = fn(
      'CreatePayment',
      'functions/payments/create-payment.ts',
      'Saga step: create the PaymentIntent, answer its client secret',
    );
    this.requestPayment = fn(
      'RequestPayment',
      'functions/payments/request-payment.ts',
      "Saga callback step: confirm with the order's payment method, wait for the webhook",
    );
    this.resolvePayment = fn(
      'ResolvePayment',
      'functions/payments/resolve-payment.ts',
      'Saga step after the payment timeout: ask Stripe whether it was paid, else cancel',
    );
    this.cancelPayment = fn(
      'CancelPayment',
      'functions/payments/cancel-payment.ts',
      'Saga compensation: cancel or refund',
    );
    this.customerPayment = fn(
      'CustomerPayment',
      'functions/payments/customer-payment.ts',
      "Invoked by the orders service: cancel the order's PaymentIntent for its customer, or read its client secret",
    );
    this.webhook = fn('StripeWebhook', 'functions/payments/stripe-webhook.ts', 'POST /payments/webhook');

    // Counted from the webhook's structured logs (Powertools JSON), so the code needs no metrics client.
    const count = (name: string, metricName: string, filterPattern: IFilterPattern) =>
      new MetricFilter(this, name, {
        logGroup: this.webhook.logGroup,
        filterPattern,
        metricNamespace: `OrderSaga/${Stack.of(this).stackName}`,
        metricName,
        metricValue: '1',
        defaultValue: 0,
      }).metric({ statistic: 'Sum', period: Duration.minutes(5) });
    this.webhookFailures = count(
      'WebhookFailuresFilter',
      'StripeWebhookFailures',
      FilterPattern.stringValue('$.level', '=', 'ERROR'),
    );
    this.strayCharges = count(
      'StrayChargesFilter',
      'StrayChargesRefunded',
      FilterPattern.stringValue('$.message', '=', STRAY_CHARGE_REFUNDED),
    );
    this.refundFailures = count(
      'RefundFailuresFilter',
      'RefundsFailed',
      FilterPattern.stringValue('$.message', '=', REFUND_FAILED),
    );
  }
}
