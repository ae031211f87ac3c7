package fsm

// PENDING MERGE: replaced by the feature-level branch.
const FeatureLevel = 2
