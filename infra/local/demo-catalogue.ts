/** The small catalogue `SEED_DEMO_DATA` puts into an empty inventory. Prices in cents. */
export const DEMO_CATALOGUE = [
  {
    sku: 'tee-classic-black',
    name: 'Classic tee, black',
    unitPrice: 2500,
    currency: 'usd',
    available: 100,
    lowStockThreshold: 10,
  },
  {
    sku: 'mug-enamel-white',
    name: 'Enamel mug, white',
    unitPrice: 1800,
    currency: 'usd',
    available: 50,
    lowStockThreshold: 5,
  },
  {
    sku: 'hoodie-zip-grey',
    name: 'Zip hoodie, grey',
    unitPrice: 6500,
    currency: 'usd',
    available: 20,
    lowStockThreshold: 3,
  },
  {
    sku: 'sticker-pack',
    name: 'Sticker pack',
    unitPrice: 500,
    currency: 'usd',
    available: 1000,
    lowStockThreshold: 50,
  },
  {
    sku: 'print-limited-01',
    name: 'Limited print #01',
    unitPrice: 12000,
    currency: 'usd',
    available: 1,
    lowStockThreshold: 0,
  },
] as const;
