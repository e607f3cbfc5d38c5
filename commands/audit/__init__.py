"""The audit: every event of an order across its streams, in order (`timeline`), each told in one line
(`summaries`)."""
