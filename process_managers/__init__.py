"""The order-fulfilment saga."""
