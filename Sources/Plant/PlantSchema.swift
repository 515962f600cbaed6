// The plant database's schema (PostgreSQL 15): every cell's ledger entries in one append-only table, each cell's hash
// chain checked by the server as rows arrive, row-level security per cell, a read-only quality role. docs/PLANT.md.

/// Migrations of the plant database and the registration of cells. Thread: whichever owns the connection.
public enum PlantSchema {
    /// The group role every cell's login role belongs to: inserts and reads its own cell's rows only.
    public static let cellGroupRole = "lampcell_cell"
    /// The read-only role for quality engineers: reads every cell's rows.
    public static let qualityRole = "lampcell_quality"

    /// The migrations, in order: an identifier and its SQL. Each runs once, in one transaction, recorded in
    /// `lampcell.schema_migration`.
    public static let migrations: [(id: String, sql: String)] = [("v1-lamp-chain", v1)]

    /// Applies the migrations `connection`'s database has not had, in order, each in its own transaction; returns
    /// the identifiers applied (empty when up to date). Needs a role that may create schemas and roles (the
    /// database owner with CREATEROLE, or a superuser). Concurrent runs serialise on an advisory lock.
    @discardableResult
    public static func migrate(_ connection: PostgresConnection) throws(PlantError) -> [String] {
        try connection.execute("SELECT pg_advisory_lock($1)", [String(migrationLockKey)], operation: "lock migrations")
        defer { _ = try? connection.execute("SELECT pg_advisory_unlock($1)", [String(migrationLockKey)]) }
        try connection.executeScript(
            """
            CREATE SCHEMA IF NOT EXISTS lampcell_meta;
            CREATE TABLE IF NOT EXISTS lampcell_meta.schema_migration (
              id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
            """, operation: "create the migration table")
        // The chain's hashes are over UTF-8 bytes: a database in another encoding would refuse non-ASCII entries.
        let encoding = try connection.execute(
            "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()",
            operation: "read the database's encoding"
        ).rows.first?.first ?? nil
        guard encoding == "UTF8" else {
            throw PlantError(
                operation: "migrate", message: "the database's encoding is \(encoding ?? "unknown"), not UTF8: create it with ENCODING 'UTF8'")
        }
        let applied = Set(
            try connection.execute("SELECT id FROM lampcell_meta.schema_migration", operation: "read migrations")
                .rows.compactMap { $0[0] })
        var done: [String] = []
        for migration in migrations where !applied.contains(migration.id) {
            do throws(PlantError) {
                try connection.executeScript(
                    "BEGIN;\n\(migration.sql)\nINSERT INTO lampcell_meta.schema_migration (id) VALUES ('\(migration.id)');\nCOMMIT;",
                    operation: "migration \(migration.id)")
            } catch {
                _ = try? connection.executeScript("ROLLBACK", operation: "roll back")
                throw error
            }
            done.append(migration.id)
        }
        return done
    }

    /// The identifiers of the migrations applied to `connection`'s database (empty before the first migrate).
    public static func appliedMigrations(_ connection: PostgresConnection) throws(PlantError) -> [String] {
        let exists = try connection.execute(
            "SELECT to_regclass('lampcell_meta.schema_migration') IS NOT NULL", operation: "look for migrations")
        guard exists.rows.first?.first == "t" else { return [] }
        return try connection.execute(
            "SELECT id FROM lampcell_meta.schema_migration ORDER BY applied_at, id", operation: "read migrations"
        ).rows.compactMap { $0[0] }
    }

    /// Registers cell `cellID` with a new login role `role` (created, made a member of `cellGroupRole`), and sets
    /// the role's password when one is given. Idempotent for the same pair; refuses a cell or role registered with
    /// another, and a role that exists but belongs to no cell. Needs CREATEROLE.
    public static func addCell(
        _ connection: PostgresConnection, cellID: String, role: String, password: String? = nil
    ) throws(PlantError) {
        guard !cellID.isEmpty, cellID.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) })
        else {
            throw PlantError(
                operation: "add cell", message: "cell id '\(cellID)': expected letters, digits, '-', '_' or '.'")
        }
        guard !role.isEmpty, role.count <= 63, role.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") })
        else {
            throw PlantError(
                operation: "add cell \(cellID)",
                message: "role '\(role)': expected at most 63 lower-case letters, digits or '_'")
        }
        try connection.executeScript("BEGIN", operation: "add cell \(cellID)")
        do throws(PlantError) {
            let existing = try connection.execute(
                "SELECT cell_id, role FROM lampcell.cell WHERE cell_id = $1 OR role = $2", [cellID, role],
                operation: "add cell \(cellID)")
            for row in existing.rows where row[0] != cellID || row[1] != role {
                throw PlantError(
                    operation: "add cell \(cellID)",
                    message: "cell \(row[0] ?? "?") is already registered with role \(row[1] ?? "?")")
            }
            let roleExists = try connection.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = $1", [role], operation: "add cell \(cellID)")
            if roleExists.rows.isEmpty {
                try connection.execute("CREATE ROLE \"\(role)\" LOGIN", operation: "create role \(role)")
            } else if existing.rows.isEmpty {
                // Someone else's role (an engineer, the owner, a group) must not become a cell's, nor get a password.
                throw PlantError(
                    operation: "add cell \(cellID)",
                    message: "role \(role) already exists and belongs to no cell: choose a new role name for the cell")
            }
            try connection.execute(
                "GRANT \(cellGroupRole) TO \"\(role)\"", operation: "grant \(cellGroupRole) to \(role)")
            if let password {
                try connection.execute(
                    "SELECT set_config('lampcell.password', $1, true)", [password], operation: "set password of \(role)")
                try connection.execute(
                    "DO $$ BEGIN EXECUTE format('ALTER ROLE %I PASSWORD %L', '\(role)', current_setting('lampcell.password')); END $$",
                    operation: "set password of \(role)")
            }
            if existing.rows.isEmpty {
                try connection.execute(
                    "INSERT INTO lampcell.cell (cell_id, role) VALUES ($1, $2)", [cellID, role],
                    operation: "register cell \(cellID)")
            }
            try connection.executeScript("COMMIT", operation: "add cell \(cellID)")
        } catch {
            _ = try? connection.executeScript("ROLLBACK", operation: "roll back")
            throw error
        }
    }

    /// Key of the advisory lock that serialises migrations.
    static let migrationLockKey: Int64 = 0x4C414D5043454C4C  // "LAMPCELL"

    /// Migration v1: the cell registry, the chain heads, the lamp table, its chain check and its roles.
    static let v1 = #"""
        CREATE SCHEMA lampcell;
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'lampcell_cell') THEN CREATE ROLE lampcell_cell NOLOGIN; END IF;
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'lampcell_quality') THEN CREATE ROLE lampcell_quality NOLOGIN; END IF;
        END $$;
        -- A text as its line of the canonical form holds it: backslash, LF and CR escaped (docs/LEDGER.md).
        CREATE FUNCTION lampcell.escaped(value text) RETURNS text
          LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
          RETURN replace(replace(replace(value, E'\\', E'\\\\'), E'\n', E'\\n'), E'\r', E'\\r');
        CREATE TABLE lampcell.cell (
          cell_id text PRIMARY KEY,
          role name NOT NULL UNIQUE,
          registered_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE lampcell.chain_head (
          cell_id text PRIMARY KEY REFERENCES lampcell.cell,
          position bigint NOT NULL,
          hash text NOT NULL,
          updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE lampcell.lamp (
          cell_id text NOT NULL,
          position bigint NOT NULL,
          serial text NOT NULL,
          variant text NOT NULL,
          order_id text NOT NULL,
          end_wall_ns bigint NOT NULL,
          verdict text NOT NULL,
          housing_lot bigint NOT NULL,
          led_module_lot bigint NOT NULL,
          lens_lot bigint NOT NULL,
          canonical text COMPRESSION lz4 NOT NULL,
          prev_hash text NOT NULL,
          hash text NOT NULL,
          end_at timestamptz NOT NULL GENERATED ALWAYS AS (to_timestamp(end_wall_ns / 1e9)) STORED,
          received_at timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (cell_id, position),
          -- The typed columns are the entry's own: each is found, whole and escaped, in its line of the canonical
          -- text (escaped values hold no line break, so a line cannot be faked inside another).
          CONSTRAINT columns_are_the_entry CHECK (
          starts_with(canonical, E'ledger-entry-v1\nposition=' || position || E'\nserial=' || lampcell.escaped(serial)
            || E'\nserial_sequence=')
          AND strpos(canonical, E'\ncell_id=' || lampcell.escaped(cell_id) || E'\nvariant=' || lampcell.escaped(variant)
            || E'\n') > 0
          AND strpos(canonical, E'\norder_id=' || lampcell.escaped(order_id) || E'\n') > 0
          AND strpos(canonical, E'\nend_wall_ns=' || end_wall_ns || E'\n') > 0
          AND strpos(canonical, E'\nverdict=' || lampcell.escaped(verdict) || E'\n') > 0
          AND strpos(canonical, E'\nhousing_lot=' || housing_lot || E'\nled_module_lot=' || led_module_lot
            || E'\nlens_lot=' || lens_lot || E'\n') > 0)
        );

        CREATE INDEX lamp_serial ON lampcell.lamp (serial);
        CREATE INDEX lamp_housing_lot ON lampcell.lamp (housing_lot);
        CREATE INDEX lamp_led_module_lot ON lampcell.lamp (led_module_lot);
        CREATE INDEX lamp_lens_lot ON lampcell.lamp (lens_lot);
        CREATE INDEX lamp_end_at ON lampcell.lamp (end_at);

        -- The cell whose role is the current user (NULL for any other role).
        CREATE FUNCTION lampcell.current_cell() RETURNS text
          LANGUAGE sql STABLE
          RETURN (SELECT cell_id FROM lampcell.cell WHERE role = current_user);

        -- Each statement's new rows, per cell: contiguous after the cell's head, each prev_hash the hash before it, each hash
        -- SHA-256 of the canonical bytes followed by prev_hash. The first bad row refuses the whole statement (SQLSTATE
        -- LC001, DETAIL the position).
        CREATE FUNCTION lampcell.check_chain() RETURNS trigger
          LANGUAGE plpgsql SECURITY DEFINER SET search_path = lampcell, pg_temp AS $$
        DECLARE
          batch record;
          head record;
          bad record;
        BEGIN
          FOR batch IN SELECT cell_id, count(*) AS n, max(position) AS last FROM added GROUP BY cell_id LOOP
            SELECT position, hash INTO head FROM chain_head WHERE cell_id = batch.cell_id FOR UPDATE;
            IF NOT FOUND THEN
              IF NOT EXISTS (SELECT FROM cell WHERE cell_id = batch.cell_id) THEN
                RAISE EXCEPTION USING ERRCODE = 'LC001', DETAIL = (SELECT min(position) FROM added WHERE cell_id = batch.cell_id)::text,
                  MESSAGE = format('chain break: cell %s is not registered (lampctl plant add-cell)', batch.cell_id);
              END IF;
              INSERT INTO chain_head (cell_id, position, hash) VALUES (batch.cell_id, 0, repeat('0', 64));
              SELECT 0::bigint AS position, repeat('0', 64) AS hash INTO head;
            END IF;
            SELECT position, reason INTO bad FROM (
              SELECT a.position,
                CASE
                  WHEN a.position <> head.position + row_number() OVER w
                    THEN format('position %s does not follow %s', a.position, coalesce(lag(a.position) OVER w, head.position))
                  WHEN a.prev_hash <> coalesce(lag(a.hash) OVER w, head.hash)
                    THEN 'prev_hash is not the hash of the entry before it'
                  WHEN a.hash <> encode(sha256(convert_to(a.canonical || a.prev_hash, 'UTF8')), 'hex')
                    THEN 'hash is not SHA-256 of the entry and prev_hash'
                END AS reason
              FROM added a WHERE a.cell_id = batch.cell_id
              WINDOW w AS (ORDER BY a.position)) checked
            WHERE reason IS NOT NULL ORDER BY position LIMIT 1;
            IF FOUND THEN
              RAISE EXCEPTION USING ERRCODE = 'LC001', DETAIL = bad.position::text,
                MESSAGE = format('chain break: cell %s position %s: %s', batch.cell_id, bad.position, bad.reason);
            END IF;
            UPDATE chain_head SET position = batch.last, hash = (SELECT hash FROM added WHERE cell_id = batch.cell_id AND position = batch.last),
              updated_at = now() WHERE cell_id = batch.cell_id;
          END LOOP;
          RETURN NULL;
        END $$;

        CREATE TRIGGER lamp_chain AFTER INSERT ON lampcell.lamp REFERENCING NEW TABLE AS added
          FOR EACH STATEMENT EXECUTE FUNCTION lampcell.check_chain();

        CREATE FUNCTION lampcell.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = format('%s is append-only: %s refused', TG_TABLE_NAME, TG_OP);
        END $$;
        CREATE TRIGGER lamp_append_only BEFORE UPDATE OR DELETE ON lampcell.lamp
          FOR EACH ROW EXECUTE FUNCTION lampcell.refuse_change();
        CREATE TRIGGER lamp_no_truncate BEFORE TRUNCATE ON lampcell.lamp
          FOR EACH STATEMENT EXECUTE FUNCTION lampcell.refuse_change();

        ALTER TABLE lampcell.lamp ENABLE ROW LEVEL SECURITY;
        CREATE POLICY cell_inserts_own ON lampcell.lamp FOR INSERT TO lampcell_cell WITH CHECK (cell_id = lampcell.current_cell());
        CREATE POLICY cell_reads_own ON lampcell.lamp FOR SELECT TO lampcell_cell USING (cell_id = lampcell.current_cell());
        CREATE POLICY quality_reads_all ON lampcell.lamp FOR SELECT TO lampcell_quality USING (true);
        ALTER TABLE lampcell.chain_head ENABLE ROW LEVEL SECURITY;
        CREATE POLICY cell_reads_own ON lampcell.chain_head FOR SELECT TO lampcell_cell USING (cell_id = lampcell.current_cell());
        CREATE POLICY quality_reads_all ON lampcell.chain_head FOR SELECT TO lampcell_quality USING (true);

        REVOKE ALL ON ALL TABLES IN SCHEMA lampcell FROM PUBLIC;
        GRANT USAGE ON SCHEMA lampcell TO lampcell_cell, lampcell_quality;
        GRANT SELECT, INSERT (cell_id, position, serial, variant, order_id, end_wall_ns, verdict, housing_lot, led_module_lot, lens_lot, canonical, prev_hash, hash) ON lampcell.lamp TO lampcell_cell;
        GRANT SELECT ON lampcell.chain_head, lampcell.cell TO lampcell_cell;
        GRANT SELECT ON lampcell.lamp, lampcell.chain_head, lampcell.cell TO lampcell_quality;
        """#
}
