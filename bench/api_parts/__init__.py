"""The parts of bench/api.py: its options, the stores and the server it starts, the orders it places,
the load it sends, what it meters and the figures it reports. Bench code: it may import any of the
product, and nothing in the product imports it.
"""
