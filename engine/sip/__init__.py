"""SIP core: sans-IO messages and transactions, Twisted transports at the edge."""
