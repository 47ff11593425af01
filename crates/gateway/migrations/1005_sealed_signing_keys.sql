-- Private signing keys are stored sealed with the gateway's key-encryption
-- key (GATEWAY_KEY_ENCRYPTION_KEY). Keys written in plaintext before this
-- migration are sealed by the gateway at its next start, which then clears
-- private_pem.
ALTER TABLE signing_keys
    ALTER COLUMN private_pem DROP NOT NULL,
    ADD COLUMN sealed_private bytea,
    ADD COLUMN sealed_with text;

ALTER TABLE signing_keys
    ADD CONSTRAINT signing_keys_private_once CHECK (
        (private_pem IS NULL) <> (sealed_private IS NULL)
        AND (sealed_private IS NULL) = (sealed_with IS NULL)
    );
