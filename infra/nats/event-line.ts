import { styleText } from 'node:util';
import { z } from 'zod';
import type { CloudEvent, EventData } from '../../events/envelope.ts';
import type { Subject } from '../../events/subjects.ts';

/*
 * One line per domain event, for `npm run events:tail`: when (UTC), what, which order (or sku),
 * its sequence, and the data a person looks for: status, reason, money, quantities.
 */

export interface LineOptions {
  /** ANSI colours; the caller decides (a TTY that has colours, and no NO_COLOR). */
  colors: boolean;
}

type Style = Parameters<typeof styleText>[0];

const paint = (options: LineOptions, style: Style, text: string) =>
  options.colors ? styleText(style, text, { validateStream: false }) : text;

/** `1250`, `eur` → `12.50 EUR`; `500`, `jpy` → `500 JPY` (the currency's own minor unit). */
export function formatMoney(amount: number, currency: string): string {
  const code = currency.toUpperCase();
  const digits =
    new Intl.NumberFormat('en', { style: 'currency', currency: code }).resolvedOptions()
      .maximumFractionDigits ?? 2;
  return `${(amount / 10 ** digits).toFixed(digits)} ${code}`;
}

const quantities = (items: readonly { sku: string; quantity: number }[]) =>
  items.map((item) => `${item.sku}×${item.quantity}`).join(', ');

const clock = (iso: string) => new Date(iso).toISOString().slice(11);

const withReason = (text: string, reason: string | undefined) => (reason ? `${text} reason ${reason}` : text);

/** The key data of each event type. */
const DETAILS: { [S in Subject]: (data: EventData<S>) => string } = {
  'order.created': (d) =>
    `${d.status} customer ${d.customerId} · ${quantities(d.items)} · ${d.currency.toUpperCase()}`,
  'order.status_changed': (d) =>
    withReason(`${d.previousStatus} → ${d.status} (saga ${d.previousSagaState} → ${d.sagaState})`, d.reason),
  'order.cancelled': (d) => withReason(`${d.status} (saga ${d.sagaState})`, d.reason),
  'order.completed': (d) =>
    `${d.status} ${formatMoney(d.amount, d.currency)}${d.paymentIntentId ? ` ${d.paymentIntentId}` : ''}`,
  'inventory.reserved': (d) =>
    `${quantities(d.items)} · ${formatMoney(d.amount, d.currency)} · until ${clock(d.expiresAt)}`,
  'inventory.out_of_stock': (d) => `${d.reason} ${d.skus.join(', ')}`,
  'inventory.released': (d) => `${d.reason} ${quantities(d.items)}`,
  'inventory.low_stock': (d) => `available ${d.available}, threshold ${d.threshold}`,
  'payment.initiated': (d) => `${formatMoney(d.amount, d.currency)} ${d.paymentIntentId} ${d.status}`,
  'payment.succeeded': (d) => `${formatMoney(d.amount, d.currency)} ${d.paymentIntentId}`,
  'payment.failed': (d) =>
    `${formatMoney(d.amount, d.currency)} ${d.paymentIntentId} reason ${d.reason}${d.failureCode ? ` (${d.failureCode})` : ''}`,
  'payment.cancelled': (d) => `${formatMoney(d.amount, d.currency)} ${d.paymentIntentId} reason ${d.reason}`,
  'payment.refunded': (d) =>
    `${formatMoney(d.amount, d.currency)} ${d.paymentIntentId} reason ${d.reason} refund ${d.refundId}`,
};

/** Money kept and stock sold read green; anything undone or failed red; a warning yellow. */
const TONE: Partial<Record<Subject, Style>> = {
  'order.completed': 'green',
  'payment.succeeded': 'green',
  'inventory.reserved': 'green',
  'order.cancelled': 'red',
  'payment.failed': 'red',
  'payment.cancelled': 'red',
  'payment.refunded': 'red',
  'inventory.out_of_stock': 'red',
  'inventory.released': 'red',
  'inventory.low_stock': 'yellow',
};

/** The longest subject, so that the columns after it line up. */
const TYPE_WIDTH = 'order.status_changed'.length;

/** `12:03:04.123Z  order.completed       o-1  #3  COMPLETED 12.50 EUR pi_1` */
export function formatEventLine(event: CloudEvent, options: LineOptions): string {
  const details = (DETAILS[event.type] as (data: CloudEvent['data']) => string)(event.data);
  return [
    paint(options, 'dim', clock(event.time)),
    paint(options, TONE[event.type] ?? 'cyan', event.type.padEnd(TYPE_WIDTH)),
    paint(options, 'bold', event.subject),
    paint(options, 'dim', `#${Number(event.sequence)}`),
    details,
  ].join('  ');
}

/** The first few problems: a line stays a line even for a message that is nothing like an event. */
const summarise = (problems: string[], keep = 3) =>
  problems.length > keep
    ? `${problems.slice(0, keep).join('; ')}; and ${problems.length - keep} more`
    : problems.join('; ');

/** A message on a stream that is not a valid event of the contract: said, never hidden. */
export function formatUndecodableLine(
  message: { subject: string; streamSequence: number; time: Date },
  error: unknown,
  options: LineOptions,
): string {
  const reason =
    error instanceof z.ZodError
      ? summarise(error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`))
      : error instanceof Error
        ? error.message.replaceAll(/\s+/g, ' ')
        : String(error);
  return [
    paint(options, 'dim', message.time.toISOString().slice(11)),
    paint(options, 'red', message.subject.padEnd(TYPE_WIDTH)),
    paint(options, 'red', `not a valid event (stream sequence ${message.streamSequence}): ${reason}`),
  ].join('  ');
}
