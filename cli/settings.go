package cli

// NodeSettings lists what `raftcache node` accepts: its flag names
// (without dashes) and the environment variables that set them. Checks of
// deployment files (deploy/) ask here rather than keep a list of their own.
func NodeSettings() (flags, envs []string) {
	for _, f := range nodeFlags() {
		flags = append(flags, f.Names()...)
		if e, ok := f.(interface{ GetEnvVars() []string }); ok {
			envs = append(envs, e.GetEnvVars()...)
		}
	}
	return flags, envs
}
