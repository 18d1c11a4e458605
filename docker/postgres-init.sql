-- The consumer-side projector keeps its read models in its own database, built from
-- the NATS stream alone (never from the ledger's tables).
CREATE DATABASE projector;
