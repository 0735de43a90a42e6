-- Set while an account's password is one ZeroLagHub generated and printed (the first admin of
-- `zlh up`): the portal asks for a password of the owner's own until it is changed.
ALTER TABLE users ADD COLUMN password_generated INTEGER NOT NULL DEFAULT 0;
