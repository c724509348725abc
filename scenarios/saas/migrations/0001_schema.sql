-- Multi-tenant SaaS baseline.
CREATE TYPE plan_tier AS ENUM ('free', 'starter', 'pro', 'enterprise');
CREATE TYPE member_role AS ENUM ('owner', 'admin', 'member', 'viewer');

CREATE TABLE tenants (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    slug       varchar(63) NOT NULL UNIQUE,
    plan       plan_tier NOT NULL DEFAULT 'free',
    seats      smallint NOT NULL DEFAULT 5 CHECK (seats BETWEEN 1 AND 10000),
    created_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);

CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         text NOT NULL UNIQUE,
    display_name  text NOT NULL,
    password_hash text NOT NULL,
    locale        varchar(10) CHECK (locale IN ('en', 'de', 'fr', 'es', 'ja')),
    last_login_ip inet,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memberships (
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    user_id    bigint NOT NULL REFERENCES users (id),
    role       member_role NOT NULL DEFAULT 'member',
    invited_by bigint REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_user_id_idx ON memberships (user_id);

CREATE TABLE events (
    id          bigserial PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    user_id     bigint REFERENCES users (id),
    kind        text NOT NULL CHECK (kind IN ('login', 'logout', 'page_view', 'api_call', 'export', 'invite')),
    payload     jsonb NOT NULL,
    user_agent  text,
    occurred_at timestamptz NOT NULL
);
CREATE INDEX events_tenant_occurred_idx ON events (tenant_id, occurred_at);
