"""The secure portal: PHI that could not travel over verified TLS waits here for its recipient."""
