//! Label, annotation and finalizer keys of the Agones contract (prefix `agones.dev/`).

/// Prefix of every Agones-owned key.
pub const PREFIX: &str = "agones.dev/";
/// Label on GameServers created by a GameServerSet: the set's name.
pub const GAMESERVERSET: &str = "agones.dev/gameserverset";
/// Label on GameServers and GameServerSets owned by a Fleet: the fleet's name.
pub const FLEET: &str = "agones.dev/fleet";
/// Label on game-server Pods: always `gameserver`.
pub const ROLE: &str = "agones.dev/role";
/// Value of [`ROLE`] on game-server Pods.
pub const ROLE_GAMESERVER: &str = "gameserver";
/// Label on game-server Pods: the GameServer's name.
pub const GAMESERVER: &str = "agones.dev/gameserver";
/// Finalizer the controller puts on every GameServer.
pub const FINALIZER: &str = "agones.dev/controller";
/// Annotation set (RFC 3339) on each allocation.
pub const LAST_ALLOCATED: &str = "agones.dev/last-allocated";
/// Annotation naming the one allocation that holds an Allocated server (set when a Ready or
/// Reserved server is allocated; removed when an Allocated server is allocated again, since it
/// is then shared). Only that allocation may give the server back.
pub const ALLOCATION_ID: &str = "stadion.dev/allocation-id";
/// Annotation with the time a GameServer entered Error (RFC 3339), from which its set holds
/// it 30 s before deleting it, as Agones does.
pub const ERRORED_AT: &str = "agones.dev/errored-at";
/// Prefix of labels and annotations written through the SDK's SetLabel / SetAnnotation.
pub const SDK_PREFIX: &str = "agones.dev/sdk-";
/// Annotation holding the hash of the template a GameServerSet was created from (Fleet rollouts).
pub const TEMPLATE_HASH: &str = "stadion.dev/template-hash";
/// Annotation on a GameServer (or on a Fleet's or GameServerSet's template) opting into the
/// allocated-server TTL: `90s`, `5m`, `1h30m`, plain seconds, or `0`/`off`
/// (see [`crate::allocation_ttl`]).
pub const ALLOCATION_TTL: &str = "stadion.dev/allocation-ttl";
/// Annotation carrying the GameServer's immutable SDK-visible container name.
pub const CONTAINER: &str = "agones.dev/container";
