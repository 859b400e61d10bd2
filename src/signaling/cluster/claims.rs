//! Names held cluster-wide: one Redis key per name, set atomically by Lua scripts so two nodes
//! never both win, with a TTL the holding node keeps renewing (a dead node's names lapse).

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use super::wire::{claim_key, ClaimRecord, CLAIM_PATTERN};

/// Takes a free name, or one whose holder's token the login presents. Returns
/// "free" / "reclaimed" / "taken".
const CLAIM: &str = r#"
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return 'free'
end
local ok, c = pcall(cjson.decode, cur)
if ok and ARGV[2] ~= '' and c.token == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return 'reclaimed'
end
return 'taken'
"#;

/// Rewrites our claim (new token, fresh TTL) if it still carries `expect` from this node;
/// recreates it if it vanished (Redis restarted). 1 = renewed, 2 = recreated, 0 = lost.
const RENEW: &str = r#"
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
  return 2
end
local ok, c = pcall(cjson.decode, cur)
if ok and c.node == ARGV[1] and c.token == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
  return 1
end
return 0
"#;

/// Deletes our claim if it is still ours.
const RELEASE: &str = r#"
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local ok, c = pcall(cjson.decode, cur)
if ok and c.node == ARGV[1] and c.token == ARGV[2] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#;

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("claim record: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    Free,
    Reclaimed,
    Taken,
}

/// What the renewal of one claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    Renewed,
    /// It was gone (Redis lost it) and is set again: other nodes must hear of it anew.
    Recreated,
    /// Another node holds the name now.
    Lost,
}

pub struct Claims {
    claim: Script,
    renew: Script,
    release: Script,
    ttl_ms: u64,
}

impl Claims {
    pub fn new(ttl_ms: u64) -> Claims {
        Claims {
            claim: Script::new(CLAIM),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
            ttl_ms,
        }
    }

    /// Claims `record`'s name (its token a placeholder until [`Claims::renew`] confirms it),
    /// taking it over if `token` is the current holder's.
    pub async fn claim(
        &self,
        redis: &mut ConnectionManager,
        record: &ClaimRecord,
        token: Option<&str>,
    ) -> Result<ClaimOutcome, ClaimError> {
        let value = serde_json::to_string(record)?;
        let outcome: String = self
            .claim
            .key(claim_key(&record.room, &record.key))
            .arg(value)
            .arg(token.unwrap_or(""))
            .arg(self.ttl_ms)
            .invoke_async(redis)
            .await?;
        Ok(match outcome.as_str() {
            "free" => ClaimOutcome::Free,
            "reclaimed" => ClaimOutcome::Reclaimed,
            _ => ClaimOutcome::Taken,
        })
    }

    /// Renews (or confirms, with `expect` the placeholder) claims in one round trip.
    pub async fn renew(
        &self,
        redis: &mut ConnectionManager,
        records: &[(ClaimRecord, String)],
    ) -> Result<Vec<Renewal>, ClaimError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        // The script is loaded in the same pipeline: EVALSHA inside a pipeline does not retry.
        let mut pipe = redis::pipe();
        pipe.load_script(&self.renew).ignore();
        for (record, expect) in records {
            let mut call = self.renew.key(claim_key(&record.room, &record.key));
            call.arg(&record.node)
                .arg(expect)
                .arg(serde_json::to_string(record)?)
                .arg(self.ttl_ms);
            pipe.invoke_script(&call);
        }
        let codes: Vec<i64> = pipe.query_async(redis).await?;
        Ok(codes
            .into_iter()
            .map(|code| match code {
                1 => Renewal::Renewed,
                2 => Renewal::Recreated,
                _ => Renewal::Lost,
            })
            .collect())
    }

    pub async fn release(
        &self,
        redis: &mut ConnectionManager,
        node: &str,
        room: &str,
        key: &str,
        token: &str,
    ) -> Result<(), ClaimError> {
        let _: i64 = self
            .release
            .key(claim_key(room, key))
            .arg(node)
            .arg(token)
            .invoke_async(redis)
            .await?;
        Ok(())
    }
}

/// Every claim in Redis (bounded: at most 1000 SCAN rounds).
pub async fn all_claims(redis: &mut ConnectionManager) -> Result<Vec<ClaimRecord>, ClaimError> {
    let mut cursor: u64 = 0;
    let mut records = Vec::new();
    for _ in 0..1000 {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(CLAIM_PATTERN)
            .arg("COUNT")
            .arg(1000)
            .query_async(redis)
            .await?;
        if !keys.is_empty() {
            let values: Vec<Option<String>> = redis.mget(&keys).await?;
            records.extend(
                values
                    .into_iter()
                    .flatten()
                    .filter_map(|v| serde_json::from_str::<ClaimRecord>(&v).ok()),
            );
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    Ok(records)
}
