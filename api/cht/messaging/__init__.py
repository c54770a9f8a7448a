"""Forms, records (JSON and SMS), the SMS gateway and aggregators, and outgoing messages."""
