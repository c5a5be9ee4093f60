-- GET /v1/ledger/entries (warehouse/ledger_reads.journal_page) lists one merchant's journal
-- entries in keyset order: WHERE merchant_id = $1 AND (created_at, entry_id) > cursor
-- ORDER BY created_at, entry_id LIMIT n.  Without this index every page scans and sorts all
-- the merchant's entries (journal_entries has only its primary key and payment_id); with it a
-- page is an index range scan of n rows, however deep the cursor.  (Period reports reading by
-- created_at alone use journal_entries_created_at, 0012.)
CREATE INDEX IF NOT EXISTS journal_entries_merchant_listing
    ON journal_entries (merchant_id, created_at, entry_id);
