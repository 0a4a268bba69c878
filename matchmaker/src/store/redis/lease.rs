//! The matching lease: one replica at a time holds it (`SET lease token NX PX`), renews it
//! every [`LEASE_RENEW`], and every fenced write checks it still holds that token. The others
//! try to take it every [`LEASE_RETRY`], so a killed holder's lease passes on within
//! [`LEASE_TTL`] plus one retry.

use std::sync::Arc;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use tokio::time::Instant;
use uuid::Uuid;

use super::{Keys, LEASE_RENEW, LEASE_RETRY, LEASE_TTL, Shared, scripts};

/// A lease this replica holds: its token (the fence number, then a random id) and number.
#[derive(Clone, Debug)]
pub struct Held {
    pub token: String,
    pub fence: u64,
}

/// Takes the lease if nobody holds it: a new counter value and a random id, set only where no
/// lease is held. `None` when another replica holds it.
pub async fn try_acquire(conn: &mut ConnectionManager, keys: &Keys) -> Result<Option<Held>, String> {
    let holder: Option<String> = conn.get(&keys.lease).await.map_err(|e| format!("cannot read the lease: {e}"))?;
    if holder.is_some() {
        return Ok(None);
    }
    let fence: u64 = conn.incr(&keys.fence, 1).await.map_err(|e| format!("cannot take the lease: {e}"))?;
    let token = format!("{fence}:{}", Uuid::new_v4());
    let taken: Option<String> = redis::cmd("SET")
        .arg(&keys.lease)
        .arg(&token)
        .arg("NX")
        .arg("PX")
        .arg(LEASE_TTL.as_millis() as u64)
        .query_async(conn)
        .await
        .map_err(|e| format!("cannot take the lease: {e}"))?;
    Ok(taken.map(|_| Held { token, fence }))
}

/// The task that holds, renews, loses and takes the lease, publishing it in `shared.role`.
pub struct LeaseKeeper {
    pub conn: ConnectionManager,
    pub keys: Keys,
    pub held: Option<Held>,
    pub shared: Arc<Shared>,
}

impl LeaseKeeper {
    pub async fn run(mut self) {
        let renew = redis::Script::new(scripts::RENEW);
        let ttl = LEASE_TTL.as_millis() as u64;
        let mut renewed = Instant::now();
        loop {
            let pause = if self.held.is_some() { LEASE_RENEW } else { LEASE_RETRY };
            tokio::time::sleep(pause).await;
            let Some(held) = self.held.clone() else {
                match try_acquire(&mut self.conn, &self.keys).await {
                    Ok(Some(held)) => {
                        tracing::info!(store = %self.shared.location, fence = held.fence, "took the matching lease; this replica matches now");
                        renewed = Instant::now();
                        self.shared.role.send_replace(Some(held.token.clone()));
                        self.held = Some(held);
                    }
                    Ok(None) => {}
                    Err(error) => tracing::debug!(store = %self.shared.location, %error, "cannot try the lease"),
                }
                continue;
            };
            let result: redis::RedisResult<i64> = renew
                .key(&self.keys.lease)
                .key(&self.keys.fence)
                .arg(&held.token)
                .arg(held.fence)
                .arg(ttl)
                .invoke_async(&mut self.conn)
                .await;
            let lost = match result {
                Ok(1) => {
                    renewed = Instant::now();
                    false
                }
                Ok(2) => {
                    tracing::warn!(store = %self.shared.location, "the lease lapsed while Redis was unreachable; taken back");
                    renewed = Instant::now();
                    false
                }
                Ok(_) => true,
                Err(error) => {
                    tracing::warn!(store = %self.shared.location, %error, "cannot renew the lease; retrying");
                    // Past its TTL another replica may hold it: stop matching until we know.
                    renewed.elapsed() >= LEASE_TTL
                }
            };
            if lost {
                tracing::error!(store = %self.shared.location, "the matching lease is lost; this replica stops matching and follows");
                self.held = None;
                self.shared.role.send_replace(None);
            }
        }
    }

    /// Gives the lease up (on shutdown) so another replica takes over at once.
    pub async fn release(conn: &mut ConnectionManager, keys: &Keys, token: &str) {
        let released: redis::RedisResult<i64> =
            redis::Script::new(scripts::RELEASE).key(&keys.lease).arg(token).invoke_async(conn).await;
        if let Err(error) = released {
            tracing::debug!(%error, "lease not released; it lapses on its own");
        }
    }
}
