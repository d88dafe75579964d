"""Development tools that ship in the package but never run in the service: the embedded Kafka
broker, the schema-registry stand-in and the sample events. Only the `demo`, `sample` and
`sandbox` commands (and tests and bench/) import them, lazily."""
