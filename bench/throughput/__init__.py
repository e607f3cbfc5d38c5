"""The parts of bench/saga_throughput.py: its options, the workload, the stores, the load, the modes, the
peer, the checks of each run and its figures. Bench code: it may import any of the product, and nothing
in the product imports it.
"""
