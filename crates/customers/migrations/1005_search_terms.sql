-- The typo-tolerant search pass corrects query words against the words of
-- the titles in search_index (kit migration 0002, kit::search).
SELECT crm_enable_search_terms();
