//! A policy on its own, without a backend: a scenario's cluster with worker states and trajectories a test sets by
//! hand, and the `ClusterView` a policy decides from, so a policy's decisions can be checked event by event.

use crate::cluster::WorkerId;
use crate::cost::{CostModel, Role};
use crate::policy::{check_command, Activity, ClusterView, Command, WorkerState};
use crate::scenario::Scenario;
use crate::time::SimTime;
use crate::trajectory::{TrajError, TrajId, TrajStatus, TrajectoryManager};
use crate::workload::Workload;

/// The state a policy sees, held by a test. Nothing runs: [`FakeView::book`] records what the driver would book
/// for a command at once (trajectories created, admitted, trained), and the test sets everything else.
pub struct FakeView {
    pub scenario: Scenario,
    pub states: Vec<WorkerState>,
    pub tm: TrajectoryManager,
    pub trainer_version: u32,
    pub now: SimTime,
    cost: Box<dyn CostModel>,
    workload: Workload,
    next_group: u64,
}

impl FakeView {
    /// Every worker idle in its start role, no trajectory, time 0.
    pub fn new(scenario: Scenario) -> Self {
        let states = WorkerState::initial(&scenario.cluster);
        FakeView {
            cost: crate::cost::cost_model(&scenario),
            workload: Workload::new(scenario.workload.clone(), scenario.seed),
            scenario,
            states,
            tm: TrajectoryManager::new(),
            trainer_version: 0,
            now: SimTime::ZERO,
            next_group: 0,
        }
    }

    /// The view a policy decides from.
    pub fn view(&self) -> ClusterView<'_> {
        ClusterView::of(self.now, &self.scenario, &self.states, &self.tm, self.trainer_version, &*self.cost)
    }

    /// Checks each command as the driver does (`check_command`: an invalid one is the error) and books what the
    /// driver books at once: groups created (lengths drawn from the scenario's workload, as the backends do; groups
    /// dynamic sampling drops are marked), trajectories admitted (the worker then rolls out) and trained (the
    /// trainer then trains). Other commands change nothing here: their effects are the test's to set.
    pub fn book(&mut self, commands: &[Command]) -> Result<(), String> {
        for c in commands {
            check_command(c, &self.scenario.cluster, &self.states, self.now)
                .map_err(|reason| format!("invalid command {}: {reason}", c.describe()))?;
            self.book_one(c).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn book_one(&mut self, c: &Command) -> Result<(), TrajError> {
        match c {
            Command::CreateGroups { step, groups } => {
                for _ in 0..*groups {
                    let g = self.workload.group(self.next_group, *step);
                    self.tm.create_group(self.next_group, *step, g.prompt_tokens, &g.responses, &[], self.now);
                    if !g.kept {
                        self.tm.mark_dropped_group(self.next_group);
                    }
                    self.next_group += 1;
                }
            }
            Command::Admit { worker, trajectories } => {
                for &t in trajectories {
                    self.tm.admit(t, *worker)?;
                }
                let st = &mut self.states[worker.index()];
                st.activity = Activity::RollingOut;
                st.resident += trajectories.len();
            }
            Command::Train { step, workers, trajectories } => {
                for &t in trajectories {
                    self.tm.train(t, *step, self.trainer_version)?;
                }
                for w in workers {
                    self.states[w.index()].activity = Activity::Training;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// `worker` fails now, as the driver books it: down, its running trajectories paused (returned, for the
    /// `WorkerFailed` event).
    pub fn fail(&mut self, worker: WorkerId) -> Result<Vec<TrajId>, TrajError> {
        let running: Vec<TrajId> =
            self.tm.all().iter().filter(|t| t.status == TrajStatus::Running(worker)).map(|t| t.id).collect();
        for &t in &running {
            self.tm.pause(t)?;
        }
        let st = &mut self.states[worker.index()];
        st.activity = Activity::Down;
        st.resident = 0;
        Ok(running)
    }

    /// `t` generated all of its tokens on the worker it was admitted to and finished now.
    pub fn finish(&mut self, t: TrajId) -> Result<WorkerId, TrajError> {
        let tr = self.tm.get(t)?;
        let TrajStatus::Running(worker) = tr.status else {
            return Err(TrajError::WrongStatus { id: t.0, status: tr.status, op: "finish", needs: "running" });
        };
        let left = tr.target_tokens - tr.generated;
        let version = self.states[worker.index()].weights_version;
        self.tm.add_tokens(t, worker, version, left)?;
        self.tm.finish(t, self.now)?;
        let st = &mut self.states[worker.index()];
        st.resident -= 1;
        if st.resident == 0 {
            st.activity = Activity::Idle;
        }
        Ok(worker)
    }

    /// `worker` holds `role` and is idle (a retag done).
    pub fn set_role(&mut self, worker: WorkerId, role: Role) {
        let st = &mut self.states[worker.index()];
        st.role = role;
        st.activity = Activity::Idle;
    }
}
