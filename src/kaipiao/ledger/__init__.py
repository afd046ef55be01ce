"""The tamper-evident ledger: the hash chain, Merkle checkpoints, signatures and proofs.

Pure functions only: nothing here touches the database, the network or the clock, so an auditor
can check a proof with this package and a public key alone.
"""
