import Stripe from 'stripe';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { paymentDeps } from './deps.ts';

const stripe = new Stripe('sk_test_unused');
const body = JSON.stringify({ id: 'evt_1', object: 'event', type: 'customer.created', data: { object: {} } });
const signedWith = (secret: string) => stripe.webhooks.generateTestHeaderString({ payload: body, secret });

function environment(webhookSecret: string) {
  vi.stubEnv('AWS_REGION', 'us-east-1');
  vi.stubEnv('PAYMENTS_TABLE_NAME', 'payments-table');
  vi.stubEnv('STRIPE_SECRET_KEY', 'sk_test_config');
  vi.stubEnv('STRIPE_WEBHOOK_SECRET', webhookSecret);
}

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('payment configuration', () => {
  it('takes one webhook secret', async () => {
    environment('whsec_only');
    const { gateway } = await paymentDeps();
    expect(gateway.verifyWebhook(body, signedWith('whsec_only')).id).toBe('evt_1');
    expect(() => gateway.verifyWebhook(body, signedWith('whsec_other'))).toThrow(/does not match/);
  });

  it('takes several, comma-separated, while a secret is rolled: either one verifies', async () => {
    environment(' whsec_new , whsec_old ');
    const { gateway } = await paymentDeps();
    expect(gateway.verifyWebhook(body, signedWith('whsec_new')).id).toBe('evt_1');
    expect(gateway.verifyWebhook(body, signedWith('whsec_old')).id).toBe('evt_1');
    expect(() => gateway.verifyWebhook(body, signedWith('whsec_other'))).toThrow(/does not match/);
  });

  it.each(['whsec_new,sk_live_oops', ',', 'whsec_a b'])('refuses to start with %j', async (value) => {
    environment(value);
    await expect(paymentDeps()).rejects.toThrow(/STRIPE_WEBHOOK_SECRET/);
  });
});
