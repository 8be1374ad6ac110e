//! The models the gateway routes over, grouped into tiers, and the ladder of
//! tiers a request of one domain climbs.
//!
//! A tier is a number: lower tiers are tried first. Local models usually sit
//! on the low tiers and clouds above them. Within a tier, a model that lists
//! the request's domain (a specialist) is chosen over one that lists none (a
//! generalist); a model that lists other domains only is not on that domain's
//! ladder. Specialists come first: a domain that has a specialist starts no
//! lower than the specialist's tier, so code questions go to the code model
//! rather than to a small generalist below it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edgeway_core::{Backend, RouteTarget};
use edgeway_policy::Rung;

/// A model the gateway can send requests to: a local model or a cloud, on a tier.
pub struct Member {
    /// What answers.
    pub backend: Arc<dyn Backend>,
    /// Local model or cloud.
    pub target: RouteTarget,
    /// Its tier: lower tiers are tried first.
    pub tier: u32,
    /// The domains it specialises in; empty for a generalist.
    pub domains: Vec<String>,
    /// Until when a failed cloud is left alone.
    down_until: Mutex<Option<Instant>>,
}

impl Member {
    /// A local model on `tier`, for every domain.
    pub fn local(backend: Arc<dyn Backend>, tier: u32) -> Self {
        Self::new(backend, RouteTarget::Edge, tier)
    }

    /// A cloud upstream on `tier`, for every domain.
    pub fn cloud(backend: Arc<dyn Backend>, tier: u32) -> Self {
        Self::new(backend, RouteTarget::Cloud, tier)
    }

    fn new(backend: Arc<dyn Backend>, target: RouteTarget, tier: u32) -> Self {
        Self { backend, target, tier, domains: Vec::new(), down_until: Mutex::new(None) }
    }

    /// The same member, specialised in `domains`.
    pub fn for_domains(mut self, domains: Vec<String>) -> Self {
        self.domains = domains;
        self
    }

    /// The name clients use for it.
    pub fn id(&self) -> &str {
        &self.backend.model_info().id
    }

    /// Whether it takes requests now: false for a cloud cooling down after failures.
    pub fn available(&self) -> bool {
        self.down_until.lock().map(|until| until.is_none_or(|t| Instant::now() >= t)).unwrap_or(true)
    }

    /// Leaves the member alone for `cooldown`.
    pub(crate) fn cool_down(&self, cooldown: Duration) {
        if let Ok(mut until) = self.down_until.lock() {
            *until = Some(Instant::now() + cooldown);
        }
    }

    /// Ends a cooldown (the member answered).
    pub(crate) fn mark_up(&self) {
        if let Ok(mut until) = self.down_until.lock() {
            *until = None;
        }
    }

    fn specialises_in(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    pub(crate) fn is_generalist(&self) -> bool {
        self.domains.is_empty()
    }

    /// The member as the decision sees it.
    pub(crate) fn rung(&self) -> Rung {
        Rung { tier: self.tier, target: self.target, available: self.available() }
    }
}

/// Why a set of members cannot route.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TiersError {
    /// Nothing to route to.
    #[error("the gateway needs at least one model")]
    Empty,
    /// Two members answer to the same name.
    #[error("two models are named '{0}'; each model needs its own name")]
    DuplicateName(String),
}

/// Every member, lowest tier first (config order within a tier).
pub struct Tiers {
    members: Vec<Arc<Member>>,
}

impl Tiers {
    /// Groups `members` by tier.
    pub fn new(members: Vec<Member>) -> Result<Self, TiersError> {
        if members.is_empty() {
            return Err(TiersError::Empty);
        }
        let mut seen = std::collections::HashSet::new();
        for member in &members {
            if !seen.insert(member.id().to_ascii_lowercase()) {
                return Err(TiersError::DuplicateName(member.id().to_owned()));
            }
        }
        let mut members: Vec<Arc<Member>> = members.into_iter().map(Arc::new).collect();
        members.sort_by_key(|member| member.tier);
        Ok(Self { members })
    }

    /// Every member, lowest tier first.
    pub fn members(&self) -> &[Arc<Member>] {
        &self.members
    }

    /// The member a client names, if any.
    pub fn named(&self, model: &str) -> Option<&Arc<Member>> {
        self.members.iter().find(|member| member.backend.serves(model))
    }

    /// The model that stands for the gateway (`/v1/models`' first entry, tokenizing):
    /// the lowest-tier local generalist, else the lowest-tier local model, else the first member.
    pub fn primary(&self) -> &Arc<Member> {
        let local = |m: &&Arc<Member>| m.target == RouteTarget::Edge;
        self.members
            .iter()
            .filter(local)
            .find(|m| m.is_generalist())
            .or_else(|| self.members.iter().find(local))
            .unwrap_or(&self.members[0])
    }

    /// The ladder a request of `domain` climbs: one member per tier, lowest first.
    pub fn ladder(&self, domain: &str) -> Vec<Arc<Member>> {
        let lowest_specialist = self.members.iter().filter(|m| m.specialises_in(domain)).map(|m| m.tier).min();
        let mut ladder: Vec<Arc<Member>> = Vec::new();
        for member in &self.members {
            if lowest_specialist.is_some_and(|tier| member.tier < tier) {
                continue;
            }
            let fits = member.specialises_in(domain) || member.is_generalist();
            match ladder.last() {
                _ if !fits => {}
                // A specialist displaces a generalist of its tier.
                Some(last) if last.tier == member.tier => {
                    if member.specialises_in(domain) && !last.specialises_in(domain) {
                        *ladder.last_mut().expect("not empty") = member.clone();
                    }
                }
                _ => ladder.push(member.clone()),
            }
        }
        if ladder.is_empty() {
            // Only specialists in other domains: the first of each tier serves.
            for member in &self.members {
                if ladder.last().is_none_or(|last| last.tier != member.tier) {
                    ladder.push(member.clone());
                }
            }
        }
        ladder
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeway_core::fake::FakeBackend;

    fn member(name: &str, target: RouteTarget, tier: u32, domains: &[&str]) -> Member {
        let backend: Arc<dyn Backend> = Arc::new(FakeBackend::new(name, "hi"));
        Member::new(backend, target, tier).for_domains(domains.iter().map(|d| d.to_string()).collect())
    }

    fn names(ladder: &[Arc<Member>]) -> Vec<&str> {
        ladder.iter().map(|m| m.id()).collect()
    }

    fn fleet() -> Tiers {
        Tiers::new(vec![
            member("cloud-b", RouteTarget::Cloud, 3, &[]),
            member("small", RouteTarget::Edge, 0, &[]),
            member("coder", RouteTarget::Edge, 1, &["code"]),
            member("medium", RouteTarget::Edge, 1, &[]),
            member("cloud-a", RouteTarget::Cloud, 2, &[]),
        ])
        .unwrap()
    }

    #[test]
    fn the_domain_picks_the_specialist_and_specialists_come_first() {
        let tiers = fleet();
        assert_eq!(names(&tiers.ladder("general")), ["small", "medium", "cloud-a", "cloud-b"]);
        assert_eq!(names(&tiers.ladder("code")), ["coder", "cloud-a", "cloud-b"]);
        assert_eq!(names(&tiers.ladder("CODE")), ["coder", "cloud-a", "cloud-b"], "domains ignore case");
        assert_eq!(tiers.primary().id(), "small");
        assert_eq!(tiers.named("cloud-a").map(|m| m.tier), Some(2));
    }

    #[test]
    fn a_specialist_only_tier_is_off_other_domains_ladders() {
        let tiers = Tiers::new(vec![
            member("small", RouteTarget::Edge, 0, &[]),
            member("coder", RouteTarget::Edge, 1, &["code"]),
            member("cloud", RouteTarget::Cloud, 2, &[]),
        ])
        .unwrap();
        assert_eq!(names(&tiers.ladder("finance")), ["small", "cloud"]);
        let only_specialists = Tiers::new(vec![member("coder", RouteTarget::Edge, 0, &["code"])]).unwrap();
        assert_eq!(names(&only_specialists.ladder("general")), ["coder"]);
    }

    #[test]
    fn names_must_be_unique_and_the_set_not_empty() {
        assert_eq!(Tiers::new(Vec::new()).err(), Some(TiersError::Empty));
        let twice = vec![member("a", RouteTarget::Edge, 0, &[]), member("A", RouteTarget::Cloud, 1, &[])];
        assert_eq!(Tiers::new(twice).err(), Some(TiersError::DuplicateName("A".into())));
    }

    #[test]
    fn a_cooling_cloud_is_unavailable_until_it_answers() {
        let cloud = member("cloud", RouteTarget::Cloud, 1, &[]);
        assert!(cloud.available());
        cloud.cool_down(Duration::from_secs(60));
        assert!(!cloud.available() && !cloud.rung().available);
        cloud.mark_up();
        assert!(cloud.available());
    }
}
