// The benchmarks that start real daemons still run (the others are in bench-smoke.test.ts).
import { WITH_DAEMONS, smokeScenarios } from './support/bench-smoke.js'

smokeScenarios(WITH_DAEMONS)
