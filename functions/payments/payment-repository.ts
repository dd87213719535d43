import { GetCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { NewEvent } from '../../events/envelope.ts';
import { transactWrite, TransactionCancelledError, type TransactItem } from '../../shared/dynamo.ts';
import { advanceSequence, lastSequenceOf, outboxPut, sequenceEvents } from '../../shared/outbox/write.ts';
import type { PaymentLastError } from '../../shared/saga.ts';
import { ALLOWED_FROM, type Payment, type PaymentStatus } from './payment.ts';

/*
 * Payments table layout (pk, sk):
 *   PAYMENT#<orderId>        PAYMENT                   the order's payment
 *   PAYMENT#<orderId>        EVENT#<time>#<eventId>    outbox events of that payment; the payment item's
 *                                                     `eventSequence` is the last sequence they used
 *   STRIPE_EVENT#<evt id>    STRIPE_EVENT              a Stripe webhook event already applied (30 days)
 * GSI `by-payment-intent` (paymentIntentId) finds the payment a webhook is about.
 */
export const BY_PAYMENT_INTENT_INDEX = 'by-payment-intent';
const paymentKey = (orderId: string) => ({ pk: `PAYMENT#${orderId}`, sk: 'PAYMENT' });
const stripeEventKey = (eventId: string) => ({ pk: `STRIPE_EVENT#${eventId}`, sk: 'STRIPE_EVENT' });
const STRIPE_EVENT_RETENTION_SECONDS = 30 * 24 * 3600;

export type TransitionResult = 'applied' | 'stale' | 'duplicate';

/** What a payment begins with: the saga's order, its money, and (from the payment step) its task. */
export interface BeginPayment {
  orderId: string;
  amount: number;
  currency: string;
  taskToken?: string;
  confirmedBy?: Payment['confirmedBy'];
}

export interface PaymentRepository {
  get(orderId: string): Promise<Payment | undefined>;
  findByPaymentIntent(paymentIntentId: string): Promise<Payment | undefined>;
  /**
   * Creates the payment (amount and currency are fixed by the first call), or returns the existing
   * one; with a task token, hands it that token, and `confirmedBy` when given. Returns it as stored.
   */
  begin(command: BeginPayment, now: Date): Promise<Payment>;
  /**
   * Moves the status forward with its event; `stripeEventId` is recorded in the same transaction.
   * `from` narrows the statuses it may move from (default: every one `ALLOWED_FROM` permits).
   * `paymentIntentId`, when given, is a further condition: the payment has no PaymentIntent on
   * record yet, or this one (an event about another intent never changes the payment).
   */
  transition(
    orderId: string,
    to: PaymentStatus,
    fields: Partial<Payment>,
    event: NewEvent | undefined,
    now: Date,
    stripeEventId?: string,
    from?: readonly PaymentStatus[],
    paymentIntentId?: string,
  ): Promise<TransitionResult>;
  /**
   * Stores why compensation is closing the payment, before it calls Stripe, so that Stripe's own
   * `payment_intent.canceled` arriving first reports the order's reason. No-op without a payment.
   */
  noteCancellationReason(
    orderId: string,
    reason: string,
    now: Date,
    options?: { keepExisting?: boolean },
  ): Promise<void>;
  /**
   * Moves the payment to its next PaymentIntent creation key, after a 5xx spent the current one
   * (Stripe answers a key that got a 5xx with that 5xx forever). Only while no intent is recorded.
   */
  nextIntentAttempt(orderId: string, now: Date): Promise<void>;
  /**
   * Records that a refund of the payment's own PaymentIntent failed, with the Stripe event id in
   * the same transaction. Conditional on the intent, not on `refundId`: the failure may arrive
   * before the payment has recorded the refund. `stale` when the payment's intent is another one.
   */
  recordRefundFailure(
    orderId: string,
    paymentIntentId: string,
    refundId: string,
    reason: string,
    now: Date,
    stripeEventId: string,
  ): Promise<TransitionResult>;
  /**
   * Records a decline the customer may retry (declineIsRetryable) on the open payment of that
   * PaymentIntent, with the Stripe event id in the same transaction; the status does not change.
   * `stale` when the payment is no longer open, records no or another intent, or holds a decline
   * Stripe reported later (`lastErrorAt`, when the event says when).
   */
  recordDecline(
    orderId: string,
    paymentIntentId: string,
    decline: { lastError: PaymentLastError; lastErrorAt?: string; stripeStatus: string },
    now: Date,
    stripeEventId: string,
  ): Promise<TransitionResult>;
  /** Remembers a Stripe event that changed nothing, so it is never applied later either. */
  recordStripeEvent(stripeEventId: string, now: Date): Promise<boolean>;
  markNotified(orderId: string, taskToken: string): Promise<void>;
}

function strip(item: Record<string, unknown>): Payment {
  const { pk: _pk, sk: _sk, kind: _kind, eventSequence: _sequence, ...payment } = item;
  return payment as unknown as Payment;
}

function stripeEventPut(tableName: string, stripeEventId: string, now: Date): TransactItem {
  return {
    Put: {
      TableName: tableName,
      Item: {
        ...stripeEventKey(stripeEventId),
        kind: 'stripe-event',
        receivedAt: now.toISOString(),
        expiresAt: Math.floor(now.getTime() / 1000) + STRIPE_EVENT_RETENTION_SECONDS,
      },
      ConditionExpression: 'attribute_not_exists(pk)',
    },
  };
}

/**
 * Writes a change of the payment (item 0) with the Stripe event that caused it (item 1), once:
 * `duplicate` when that event was applied already, `stale` when the change's condition failed.
 */
async function applyWithStripeEvent(
  client: DynamoDBDocumentClient,
  items: [TransactItem, TransactItem],
): Promise<'applied' | 'duplicate' | 'stale'> {
  try {
    await transactWrite(client, items);
    return 'applied';
  } catch (error) {
    if (!(error instanceof TransactionCancelledError)) throw error;
    if (error.reasons[1]?.code === 'ConditionalCheckFailed') return 'duplicate';
    if (error.reasons[0]?.code === 'ConditionalCheckFailed') return 'stale';
    throw error;
  }
}

export function dynamoPaymentRepository(
  client: DynamoDBDocumentClient,
  tableName: string,
): PaymentRepository {
  /** An update whose failed condition means "nothing to do here", not an error. */
  const updateUnlessConditionFails = async (input: ConstructorParameters<typeof UpdateCommand>[0]) => {
    await client.send(new UpdateCommand(input)).catch((error: unknown) => {
      if ((error as Error).name !== 'ConditionalCheckFailedException') throw error;
    });
  };
  /*
   * The last event sequence seen of each payment this instance read or wrote: a transition with an
   * event guards on it, so the usual write needs no read of its own. A stale entry only costs a
   * retry (the failed condition returns the item as it is). Bounded: a warm Lambda sees many orders.
   */
  const lastSequences = new Map<string, number>();
  const noteSequence = (orderId: string, last: number) => {
    if (lastSequences.size >= 10_000) lastSequences.clear();
    lastSequences.set(orderId, last);
  };
  const knownSequence = async (orderId: string): Promise<number> => {
    const known = lastSequences.get(orderId);
    if (known !== undefined) return known;
    const { Item } = await client.send(
      new GetCommand({
        TableName: tableName,
        Key: paymentKey(orderId),
        ConsistentRead: true,
        ProjectionExpression: '#eventSequence',
        ExpressionAttributeNames: { '#eventSequence': 'eventSequence' },
      }),
    );
    return lastSequenceOf(Item);
  };

  return {
    async get(orderId) {
      const { Item } = await client.send(
        new GetCommand({ TableName: tableName, Key: paymentKey(orderId), ConsistentRead: true }),
      );
      if (Item) noteSequence(orderId, lastSequenceOf(Item));
      return Item ? strip(Item) : undefined;
    },

    async findByPaymentIntent(paymentIntentId) {
      const { Items } = await client.send(
        new QueryCommand({
          TableName: tableName,
          IndexName: BY_PAYMENT_INTENT_INDEX,
          KeyConditionExpression: 'paymentIntentId = :id',
          ExpressionAttributeValues: { ':id': paymentIntentId },
          Limit: 1,
        }),
      );
      const found = Items?.[0];
      // The index is eventually consistent: read the item itself for the current state.
      return found ? this.get(String(found.orderId)) : undefined;
    },

    async begin(command, now) {
      const { Attributes } = await client.send(
        new UpdateCommand({
          TableName: tableName,
          Key: paymentKey(command.orderId),
          UpdateExpression:
            'SET orderId = :orderId, kind = :kind, amount = if_not_exists(amount, :amount), ' +
            'currency = if_not_exists(currency, :currency), #status = if_not_exists(#status, :creating), ' +
            'createdAt = if_not_exists(createdAt, :now), updatedAt = :now' +
            (command.taskToken ? ', taskToken = :token' : '') +
            (command.confirmedBy ? ', confirmedBy = :confirmedBy' : ''),
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':orderId': command.orderId,
            ':kind': 'payment',
            ':amount': command.amount,
            ':currency': command.currency,
            ':creating': 'CREATING',
            ':now': now.toISOString(),
            ...(command.taskToken ? { ':token': command.taskToken } : {}),
            ...(command.confirmedBy ? { ':confirmedBy': command.confirmedBy } : {}),
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      noteSequence(command.orderId, lastSequenceOf(Attributes));
      return strip(Attributes!);
    },

    async transition(orderId, to, fields, event, now, stripeEventId, only, paymentIntentId) {
      const from = only ? ALLOWED_FROM[to].filter((status) => only.includes(status)) : ALLOWED_FROM[to];
      // No status it may move from (e.g. to CREATING, or `only` naming none allowed): nothing can apply.
      if (from.length === 0) return 'stale';
      const names: Record<string, string> = { '#status': 'status' };
      const values: Record<string, unknown> = { ':to': to, ':now': now.toISOString() };
      const sets = ['#status = :to', 'updatedAt = :now'];
      Object.entries(fields).forEach(([name, value], index) => {
        names[`#f${index}`] = name;
        values[`:f${index}`] = value;
        sets.push(`#f${index} = :f${index}`);
      });
      from.forEach((status, index) => (values[`:from${index}`] = status));
      const conditions = [`#status IN (${from.map((_, index) => `:from${index}`).join(', ')})`];
      if (paymentIntentId !== undefined) {
        names['#intent'] = 'paymentIntentId';
        values[':intent'] = paymentIntentId;
        conditions.push('(attribute_not_exists(#intent) OR #intent = :intent)');
      }
      const statusHolds = (item: Record<string, unknown>) =>
        from.includes(item.status as PaymentStatus) &&
        (paymentIntentId === undefined ||
          item.paymentIntentId === undefined ||
          item.paymentIntentId === paymentIntentId);

      // With an event, the payment's sequence is guarded too; if only that moved (another event was
      // written since this instance last saw the payment), try again from where it is now.
      for (let attempt = 1; ; attempt++) {
        const last = event ? await knownSequence(orderId) : 0;
        const sequence = event ? advanceSequence(last, 1) : undefined;
        const items: TransactItem[] = [
          {
            Update: {
              TableName: tableName,
              Key: paymentKey(orderId),
              UpdateExpression: `SET ${[...sets, ...(sequence ? [sequence.set] : [])].join(', ')}`,
              ConditionExpression: [...conditions, ...(sequence ? [sequence.condition] : [])].join(' AND '),
              ExpressionAttributeNames: { ...names, ...sequence?.names },
              ExpressionAttributeValues: { ...values, ...sequence?.values },
              ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
            },
          },
        ];
        if (event)
          items.push(outboxPut(tableName, paymentKey(orderId).pk, sequenceEvents([event], last)[0]!));
        if (stripeEventId) items.push(stripeEventPut(tableName, stripeEventId, now));
        try {
          await transactWrite(client, items);
          if (event) noteSequence(orderId, last + 1);
          return 'applied';
        } catch (error) {
          if (!(error instanceof TransactionCancelledError)) throw error;
          const eventReason = stripeEventId ? error.reasons[items.length - 1] : undefined;
          if (eventReason?.code === 'ConditionalCheckFailed') return 'duplicate';
          const paymentReason = error.reasons[0];
          if (paymentReason?.code !== 'ConditionalCheckFailed') throw error;
          const current = paymentReason.item;
          if (!event || !current || !statusHolds(current)) return 'stale';
          noteSequence(orderId, lastSequenceOf(current));
          if (attempt >= 5) throw error;
        }
      }
    },

    async recordRefundFailure(orderId, paymentIntentId, refundId, reason, now, stripeEventId) {
      const items: [TransactItem, TransactItem] = [
        {
          Update: {
            TableName: tableName,
            Key: paymentKey(orderId),
            UpdateExpression:
              'SET failedRefundId = :refundId, refundFailedAt = :now, refundFailureReason = :reason, updatedAt = :now',
            ConditionExpression: 'paymentIntentId = :intent',
            ExpressionAttributeValues: {
              ':now': now.toISOString(),
              ':reason': reason,
              ':refundId': refundId,
              ':intent': paymentIntentId,
            },
          },
        },
        stripeEventPut(tableName, stripeEventId, now),
      ];
      return applyWithStripeEvent(client, items);
    },

    async recordDecline(orderId, paymentIntentId, decline, now, stripeEventId) {
      const { lastError, lastErrorAt, stripeStatus } = decline;
      const items: [TransactItem, TransactItem] = [
        {
          Update: {
            TableName: tableName,
            Key: paymentKey(orderId),
            UpdateExpression:
              'SET lastError = :error, stripeStatus = :stripeStatus, updatedAt = :now' +
              (lastErrorAt ? ', lastErrorAt = :at' : ''),
            ConditionExpression:
              '#status IN (:creating, :initiated) AND paymentIntentId = :intent' +
              (lastErrorAt ? ' AND (attribute_not_exists(lastErrorAt) OR lastErrorAt <= :at)' : ''),
            ExpressionAttributeNames: { '#status': 'status' },
            ExpressionAttributeValues: {
              ':error': lastError,
              ':stripeStatus': stripeStatus,
              ':now': now.toISOString(),
              ':creating': 'CREATING',
              ':initiated': 'INITIATED',
              ':intent': paymentIntentId,
              ...(lastErrorAt ? { ':at': lastErrorAt } : {}),
            },
          },
        },
        stripeEventPut(tableName, stripeEventId, now),
      ];
      return applyWithStripeEvent(client, items);
    },

    async recordStripeEvent(stripeEventId, now) {
      try {
        await transactWrite(client, [stripeEventPut(tableName, stripeEventId, now)]);
        return true;
      } catch (error) {
        if (error instanceof TransactionCancelledError) return false;
        throw error;
      }
    },

    async noteCancellationReason(orderId, reason, now, options) {
      await updateUnlessConditionFails({
        TableName: tableName,
        Key: paymentKey(orderId),
        UpdateExpression: options?.keepExisting
          ? 'SET cancellationReason = if_not_exists(cancellationReason, :reason), updatedAt = :now'
          : 'SET cancellationReason = :reason, updatedAt = :now',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeValues: { ':reason': reason, ':now': now.toISOString() },
      });
    },
    async nextIntentAttempt(orderId, now) {
      await updateUnlessConditionFails({
        TableName: tableName,
        Key: paymentKey(orderId),
        UpdateExpression: 'ADD intentAttempt :one SET updatedAt = :now',
        ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(paymentIntentId)',
        ExpressionAttributeValues: { ':one': 1, ':now': now.toISOString() },
      });
    },
    async markNotified(orderId, taskToken) {
      await updateUnlessConditionFails({
        TableName: tableName,
        Key: paymentKey(orderId),
        UpdateExpression: 'SET notifiedToken = :token',
        ConditionExpression: 'taskToken = :token',
        ExpressionAttributeValues: { ':token': taskToken },
      });
    },
  };
}
