/**
 * Stripe's charge amount limits, in the currency's minor unit, as Stripe documents them
 * (https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts). Stripe applies the minimum
 * of the account's settlement currency, converting a charge in another currency first; a currency
 * missing here has no minimum of its own (it must convert to at least the settlement currency's).
 * No dependencies, so that the payment code and the local Stripe emulator can both import it.
 */
export const STRIPE_MINIMUM_CHARGE: Readonly<Record<string, number>> = Object.freeze({
  usd: 50,
  aed: 200,
  aud: 50,
  bgn: 100,
  brl: 50,
  cad: 50,
  chf: 50,
  czk: 1500,
  dkk: 250,
  eur: 50,
  gbp: 30,
  hkd: 400,
  huf: 17500,
  inr: 50,
  jpy: 50,
  mxn: 1000,
  myr: 200,
  nok: 300,
  nzd: 50,
  pln: 200,
  ron: 200,
  sek: 300,
  sgd: 50,
  thb: 1000,
});

/** The amount field takes at most eight digits, whatever the currency. */
export const STRIPE_MAXIMUM_CHARGE = 99_999_999;

/** The minimum for a lower-case ISO currency code; 1 when Stripe's table does not list it. */
export function stripeMinimumCharge(currency: string): number {
  return STRIPE_MINIMUM_CHARGE[currency.toLowerCase()] ?? 1;
}
