import { defineSaga } from 'tidemark';

/**
 * An order: create it, reserve stock, take the payment, ship. Payment may answer
 * `PaymentUnavailable` (worth retrying) or `PaymentDeclined` (compensate at once).
 * Every compensation must accept "nothing to undo": a step that timed out may or may
 * not have happened, and is compensated too.
 */
export const orderSaga = defineSaga({
  name: 'order',
  steps: [
    {
      name: 'order',
      command: 'saga.cmd.order.create',
      payload: { orderId: '$input.orderId', customer: '$input.customer', items: '$input.items' },
      success: ['OrderCreated'],
      failure: ['OrderRejected'],
      timeout: '2s',
      retry: { attempts: 3, backoff: { initial: '100ms' } },
      compensation: { command: 'saga.cmd.order.cancel', payload: { orderId: '$input.orderId', reason: '$failure.type' }, success: ['OrderCancelled'], timeout: '2s' },
    },
    {
      name: 'inventory',
      command: 'saga.cmd.inventory.reserve',
      payload: { orderId: '$input.orderId', items: '$input.items' },
      success: ['InventoryReserved'],
      failure: ['OutOfStock'],
      timeout: '2s',
      retry: { attempts: 3, backoff: { initial: '100ms' } },
      compensation: { command: 'saga.cmd.inventory.release', payload: { reservation: '$steps.inventory.reservation' }, success: ['InventoryReleased'], timeout: '2s' },
    },
    {
      name: 'payment',
      command: 'saga.cmd.payment.charge',
      // a function payload: anything a mapping cannot say
      payload: ({ input }) => {
        const { orderId, items } = input as { orderId: string; items: Array<{ price: string; qty: number }> };
        const cents = items.reduce((sum, item) => sum + Math.round(Number(item.price) * 100) * item.qty, 0);
        return { orderId, amount: (cents / 100).toFixed(2), currency: 'TWD' };
      },
      success: ['PaymentCharged'],
      failure: ['PaymentDeclined', 'PaymentUnavailable'],
      timeout: '3s',
      retry: { attempts: 4, backoff: { initial: '200ms', factor: 2, max: '2s' }, retryable: ['PaymentUnavailable'] },
      compensation: { command: 'saga.cmd.payment.refund', payload: { charge: '$steps.payment.chargeId' }, success: ['PaymentRefunded'], failure: ['RefundFailed'], timeout: '3s' },
    },
    {
      name: 'shipping',
      command: 'saga.cmd.shipping.ship',
      payload: { orderId: '$input.orderId', address: '$input.address' },
      success: ['Shipped'],
      failure: ['ShippingRejected'],
      timeout: '2s',
      retry: { attempts: 2, onTimeout: 'retry' },
      compensation: { command: 'saga.cmd.shipping.cancel', payload: { orderId: '$input.orderId' }, success: ['ShipmentCancelled'], timeout: '2s' },
    },
  ],
  compensationRetry: { attempts: 5, backoff: { initial: '200ms', factor: 2, max: '5s' } },
});

/** What `tidemark saga run --definitions examples/order-saga/definition.ts` loads. */
export const definitions = [orderSaga];
