//! The alpha (player tracking) and beta (counters and lists) calls.

use tonic::transport::Channel;

use super::{Error, Result};
use crate::proto::{alpha, beta};

/// Player tracking (`agones.dev.sdk.alpha`). Get one from [`Sdk::alpha`](super::Sdk::alpha).
#[derive(Clone, Debug)]
pub struct AlphaSdk {
    client: alpha::sdk_client::SdkClient<Channel>,
}

impl AlphaSdk {
    pub(crate) fn new(channel: Channel) -> Self {
        Self { client: alpha::sdk_client::SdkClient::new(channel) }
    }

    fn client(&self) -> alpha::sdk_client::SdkClient<Channel> {
        self.client.clone()
    }

    /// Records a connected player; false when it was already connected. Fails at capacity.
    pub async fn player_connect(&self, id: impl Into<String>) -> Result<bool> {
        let request = alpha::PlayerId { player_id: id.into() };
        Ok(self.client().player_connect(request).await.map_err(Error::rpc("PlayerConnect"))?.into_inner().bool)
    }

    /// Records a disconnected player; false when it was not connected.
    pub async fn player_disconnect(&self, id: impl Into<String>) -> Result<bool> {
        let request = alpha::PlayerId { player_id: id.into() };
        Ok(self.client().player_disconnect(request).await.map_err(Error::rpc("PlayerDisconnect"))?.into_inner().bool)
    }

    /// Sets the player capacity.
    pub async fn set_player_capacity(&self, capacity: i64) -> Result<()> {
        let request = alpha::Count { count: capacity };
        self.client().set_player_capacity(request).await.map_err(Error::rpc("SetPlayerCapacity"))?;
        Ok(())
    }

    /// The player capacity.
    pub async fn get_player_capacity(&self) -> Result<i64> {
        let response = self.client().get_player_capacity(alpha::Empty {}).await;
        Ok(response.map_err(Error::rpc("GetPlayerCapacity"))?.into_inner().count)
    }

    /// How many players are connected.
    pub async fn get_player_count(&self) -> Result<i64> {
        let response = self.client().get_player_count(alpha::Empty {}).await;
        Ok(response.map_err(Error::rpc("GetPlayerCount"))?.into_inner().count)
    }

    /// Whether this player is connected.
    pub async fn is_player_connected(&self, id: impl Into<String>) -> Result<bool> {
        let request = alpha::PlayerId { player_id: id.into() };
        Ok(self.client().is_player_connected(request).await.map_err(Error::rpc("IsPlayerConnected"))?.into_inner().bool)
    }

    /// The connected players' ids.
    pub async fn get_connected_players(&self) -> Result<Vec<String>> {
        let response = self.client().get_connected_players(alpha::Empty {}).await;
        Ok(response.map_err(Error::rpc("GetConnectedPlayers"))?.into_inner().list)
    }
}

/// Counters and lists (`agones.dev.sdk.beta`). Get one from [`Sdk::beta`](super::Sdk::beta).
#[derive(Clone, Debug)]
pub struct BetaSdk {
    client: beta::sdk_client::SdkClient<Channel>,
}

impl BetaSdk {
    pub(crate) fn new(channel: Channel) -> Self {
        Self { client: beta::sdk_client::SdkClient::new(channel) }
    }

    fn client(&self) -> beta::sdk_client::SdkClient<Channel> {
        self.client.clone()
    }

    /// A counter (NOT_FOUND when there is none with this name).
    pub async fn get_counter(&self, name: impl Into<String>) -> Result<beta::Counter> {
        let request = beta::GetCounterRequest { name: name.into() };
        Ok(self.client().get_counter(request).await.map_err(Error::rpc("GetCounter"))?.into_inner())
    }

    /// The raw UpdateCounter call.
    pub async fn update_counter(&self, update: beta::CounterUpdateRequest) -> Result<beta::Counter> {
        let request = beta::UpdateCounterRequest { counter_update_request: Some(update) };
        Ok(self.client().update_counter(request).await.map_err(Error::rpc("UpdateCounter"))?.into_inner())
    }

    /// Adds `amount` to a counter (OUT_OF_RANGE past its capacity).
    pub async fn increment_counter(&self, name: impl Into<String>, amount: i64) -> Result<beta::Counter> {
        self.update_counter(beta::CounterUpdateRequest { name: name.into(), count_diff: amount, ..Default::default() })
            .await
    }

    /// Subtracts `amount` from a counter (OUT_OF_RANGE below zero).
    pub async fn decrement_counter(&self, name: impl Into<String>, amount: i64) -> Result<beta::Counter> {
        let diff = amount.checked_neg().unwrap_or(i64::MAX);
        self.update_counter(beta::CounterUpdateRequest { name: name.into(), count_diff: diff, ..Default::default() })
            .await
    }

    /// Sets a counter's count.
    pub async fn set_counter_count(&self, name: impl Into<String>, count: i64) -> Result<beta::Counter> {
        self.update_counter(beta::CounterUpdateRequest { name: name.into(), count: Some(count), ..Default::default() })
            .await
    }

    /// Sets a counter's capacity.
    pub async fn set_counter_capacity(&self, name: impl Into<String>, capacity: i64) -> Result<beta::Counter> {
        let update = beta::CounterUpdateRequest { name: name.into(), capacity: Some(capacity), ..Default::default() };
        self.update_counter(update).await
    }

    /// A list (NOT_FOUND when there is none with this name).
    pub async fn get_list(&self, name: impl Into<String>) -> Result<beta::List> {
        let request = beta::GetListRequest { name: name.into() };
        Ok(self.client().get_list(request).await.map_err(Error::rpc("GetList"))?.into_inner())
    }

    /// The raw UpdateList call: replaces the fields of `list` named in `paths` (`capacity`,
    /// `values`).
    pub async fn update_list(&self, list: beta::List, paths: &[&str]) -> Result<beta::List> {
        let update_mask = prost_types::FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() };
        let request = beta::UpdateListRequest { list: Some(list), update_mask: Some(update_mask) };
        Ok(self.client().update_list(request).await.map_err(Error::rpc("UpdateList"))?.into_inner())
    }

    /// Sets a list's capacity (0..=1000); values past it are dropped.
    pub async fn set_list_capacity(&self, name: impl Into<String>, capacity: i64) -> Result<beta::List> {
        self.update_list(beta::List { name: name.into(), capacity, values: Vec::new() }, &["capacity"]).await
    }

    /// Whether a list holds `value`.
    pub async fn list_contains(&self, name: impl Into<String>, value: &str) -> Result<bool> {
        Ok(self.get_list(name).await?.values.iter().any(|v| v == value))
    }

    /// Appends a value (ALREADY_EXISTS when present, OUT_OF_RANGE when full).
    pub async fn add_list_value(&self, name: impl Into<String>, value: impl Into<String>) -> Result<beta::List> {
        let request = beta::AddListValueRequest { name: name.into(), value: value.into() };
        Ok(self.client().add_list_value(request).await.map_err(Error::rpc("AddListValue"))?.into_inner())
    }

    /// Removes a value (NOT_FOUND when absent).
    pub async fn remove_list_value(&self, name: impl Into<String>, value: impl Into<String>) -> Result<beta::List> {
        let request = beta::RemoveListValueRequest { name: name.into(), value: value.into() };
        Ok(self.client().remove_list_value(request).await.map_err(Error::rpc("RemoveListValue"))?.into_inner())
    }
}
