import { Duration, type RemovalPolicy } from 'aws-cdk-lib';
import type { Table } from 'aws-cdk-lib/aws-dynamodb';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
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
  readonly requestPayment: ServiceFunction;
  readonly cancelPayment: ServiceFunction;
  readonly webhook: ServiceFunction;

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
    this.requestPayment = fn(
      'RequestPayment',
      'functions/payments/request-payment.ts',
      'Saga callback step: create the PaymentIntent',
    );
    this.cancelPayment = fn(
      'CancelPayment',
      'functions/payments/cancel-payment.ts',
      'Saga compensation: cancel or refund',
    );
    this.webhook = fn('StripeWebhook', 'functions/payments/stripe-webhook.ts', 'POST /payments/webhook');
  }
}
