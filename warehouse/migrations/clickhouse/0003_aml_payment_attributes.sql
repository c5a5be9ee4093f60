-- What the AML rules (warehouse/aml, docs/aml.md) need to know about a payment beyond the
-- facts of 0001/0002.  All three are '' when unknown; a rule never treats '' as a link.
--
-- instrument_ref: the paying instrument as the merchant named it, so customers who share one
--   are linked ("connected" payments): 'card:<token>' (a network or vault token, never a PAN),
--   'vpa:<lowercased VPA>', 'wallet:<wallet id>'.  Filled by the sink from payment.requested.
-- device_id: the payer's device fingerprint.  payment.requested v1 carries none, so the sink
--   leaves it ''; loaders that know it (the simulator, a device-intelligence feed) fill it.
-- payer_country: ISO 3166-1 alpha-2 of the payer where known (card issuing country, remitter
--   country); '' unknown.  A payment in a foreign currency is cross-border whatever this says.
ALTER TABLE {db}.payments ADD COLUMN IF NOT EXISTS instrument_ref String DEFAULT '' AFTER upi_flow;

ALTER TABLE {db}.payments ADD COLUMN IF NOT EXISTS device_id String DEFAULT '' AFTER instrument_ref;

ALTER TABLE {db}.payments ADD COLUMN IF NOT EXISTS payer_country LowCardinality(String) DEFAULT '' AFTER device_id;
