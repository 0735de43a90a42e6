//! Moving a host from SQLite to PostgreSQL (`zlh admin export --to`, `zlh admin import
//! --from`): every table, in one PostgreSQL transaction, into a database that holds nothing yet.
//! Each table's rows are counted and hashed on both sides, the copy read back before the
//! commit; any difference rolls the whole copy back, so a host is never half moved.

use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Row};

use super::{PgStore, SqliteStore, StoreError};

/// One table as copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// The table.
    pub table: String,
    /// Its rows, on both sides.
    pub rows: usize,
    /// SHA-256 (hex) of its rows, on both sides.
    pub sha256: String,
}

/// Why a host could not be moved. Nothing was kept in the target either way.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The target holds rows already.
    #[error("the PostgreSQL database already holds data (table {0}); move a host only into an empty one")]
    NotEmpty(String),
    /// A table read back differently from what was read.
    #[error("table {table} differs after the copy ({detail}); nothing was kept")]
    Mismatch {
        /// The table.
        table: String,
        /// Rows or checksum.
        detail: String,
    },
    /// A database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for TransferError {
    fn from(error: sqlx::Error) -> Self {
        TransferError::Store(error.into())
    }
}

/// A value, as the PostgreSQL column's type reads it.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Int(Option<i64>),
    Bool(Option<bool>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

impl Cell {
    /// Reads column `index` of a row as PostgreSQL's `data_type` says.
    fn read<'r, R: Row>(row: &'r R, index: usize, data_type: &str) -> Result<Cell, sqlx::Error>
    where
        usize: sqlx::ColumnIndex<R>,
        Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        Option<bool>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        Option<Vec<u8>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        Ok(match data_type {
            "bigint" | "integer" => Cell::Int(row.try_get(index)?),
            "boolean" => Cell::Bool(row.try_get(index)?),
            "bytea" => Cell::Bytes(row.try_get(index)?),
            _ => Cell::Text(row.try_get(index)?),
        })
    }

    /// Feeds an unambiguous rendering (a tag, then a length where it varies) to a hash.
    fn hash_into(&self, bytes: &mut Vec<u8>) {
        let mut put = |tag: u8, content: &[u8]| {
            bytes.push(tag);
            bytes.extend_from_slice(&(content.len() as u64).to_le_bytes());
            bytes.extend_from_slice(content);
        };
        match self {
            Cell::Int(None) | Cell::Bool(None) | Cell::Text(None) | Cell::Bytes(None) => put(0, &[]),
            Cell::Int(Some(n)) => put(1, &n.to_le_bytes()),
            Cell::Bool(Some(b)) => put(1, &i64::from(*b).to_le_bytes()),
            Cell::Text(Some(text)) => put(2, text.as_bytes()),
            Cell::Bytes(Some(data)) => put(3, data),
        }
    }
}

/// The count and SHA-256 of rows, whatever their order.
fn digest(rows: &[Vec<Cell>]) -> (usize, String) {
    let mut rendered: Vec<Vec<u8>> = rows
        .iter()
        .map(|row| {
            let mut bytes = Vec::new();
            row.iter().for_each(|cell| cell.hash_into(&mut bytes));
            bytes
        })
        .collect();
    rendered.sort_unstable();
    let mut hash = Sha256::new();
    for row in &rendered {
        hash.update((row.len() as u64).to_le_bytes());
        hash.update(row);
    }
    (rows.len(), hash.finalize().iter().map(|byte| format!("{byte:02x}")).collect())
}

/// SQLite's tables, each after the tables it refers to.
async fn tables_in_order(source: &sqlx::SqlitePool) -> Result<Vec<String>, sqlx::Error> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(source)
    .await?;
    let mut pending = Vec::new();
    for name in names {
        let refers: Vec<String> = sqlx::query_scalar("SELECT \"table\" FROM pragma_foreign_key_list(?)")
            .bind(&name)
            .fetch_all(source)
            .await?;
        pending.push((name, refers));
    }
    let mut ordered: Vec<String> = Vec::new();
    while !pending.is_empty() {
        let before = pending.len();
        let mut index = 0;
        while index < pending.len() {
            let (name, refers) = &pending[index];
            if refers.iter().all(|r| r == name || ordered.contains(r)) {
                ordered.push(pending.remove(index).0);
            } else {
                index += 1;
            }
        }
        if pending.len() == before {
            // A cycle (none in our schema): the rest in name order.
            ordered.extend(pending.drain(..).map(|(name, _)| name));
        }
    }
    Ok(ordered)
}

/// Copies every table of the SQLite database at `sqlite_url` into the empty PostgreSQL
/// database at `postgres_url` (both migrated to this version first).
pub async fn sqlite_to_postgres(sqlite_url: &str, postgres_url: &str) -> Result<Vec<Copied>, TransferError> {
    let source = SqliteStore::open(sqlite_url).await?;
    let target = PgStore::open(postgres_url).await?;
    let tables = tables_in_order(source.pool()).await?;
    let mut tx = target.pool().begin().await?;
    for table in &tables {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM \"{table}\")");
        if sqlx::query_scalar::<_, bool>(AssertSqlSafe(sql)).fetch_one(&mut *tx).await? {
            return Err(TransferError::NotEmpty(table.clone()));
        }
    }
    let mut copied = Vec::new();
    for table in &tables {
        let columns: Vec<(String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&mut *tx)
        .await?;
        if columns.is_empty() {
            let detail = "PostgreSQL has no such table".to_owned();
            return Err(TransferError::Mismatch { table: table.clone(), detail });
        }
        let list = columns.iter().map(|(name, _)| format!("\"{name}\"")).collect::<Vec<_>>().join(", ");
        let select = format!("SELECT {list} FROM \"{table}\"");
        let read = |row: &dyn Fn(usize, &str) -> Result<Cell, sqlx::Error>| {
            columns
                .iter()
                .enumerate()
                .map(|(i, (_, data_type))| row(i, data_type))
                .collect::<Result<Vec<_>, _>>()
        };
        let rows: Vec<Vec<Cell>> = sqlx::query(AssertSqlSafe(select.clone()))
            .fetch_all(source.pool())
            .await?
            .iter()
            .map(|row| read(&|i, data_type| Cell::read(row, i, data_type)))
            .collect::<Result<_, _>>()?;
        let placeholders = (1..=columns.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let insert =
            format!("INSERT INTO \"{table}\" ({list}) OVERRIDING SYSTEM VALUE VALUES ({placeholders})");
        for row in &rows {
            let mut query = sqlx::query(AssertSqlSafe(insert.clone()));
            for cell in row {
                query = match cell.clone() {
                    Cell::Int(value) => query.bind(value),
                    Cell::Bool(value) => query.bind(value),
                    Cell::Text(value) => query.bind(value),
                    Cell::Bytes(value) => query.bind(value),
                };
            }
            query.execute(&mut *tx).await?;
        }
        // Identity columns go on after the highest id copied.
        if columns.iter().any(|(name, data_type)| name == "id" && data_type == "bigint") {
            let sql = format!(
                "SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) \
                 FROM \"{table}\" WHERE pg_get_serial_sequence('\"{table}\"', 'id') IS NOT NULL"
            );
            sqlx::query(AssertSqlSafe(sql)).execute(&mut *tx).await?;
        }
        let back: Vec<Vec<Cell>> = sqlx::query(AssertSqlSafe(select))
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| read(&|i, data_type| Cell::read(row, i, data_type)))
            .collect::<Result<_, _>>()?;
        let ((rows, sha256), (rows_back, sha256_back)) = (digest(&rows), digest(&back));
        if rows != rows_back || sha256 != sha256_back {
            let detail = format!("{rows} rows read, {rows_back} written");
            return Err(TransferError::Mismatch { table: table.clone(), detail });
        }
        copied.push(Copied { table: table.clone(), rows, sha256 });
    }
    tx.commit().await?;
    Ok(copied)
}
