// The benchmark of runs over sessions still runs (its daemon and training processes are real).
import { WITH_SESSIONS, smokeScenarios } from './support/bench-smoke.js'

smokeScenarios(WITH_SESSIONS)
