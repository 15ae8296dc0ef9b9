/**
 * The `slack` notifier: a Slack incoming webhook, as Python Aim sends it (POST `{"text": …}`).
 * Unlike Aim, the answer is checked: Slack answers `200 ok` on success and a plain-text error
 * code otherwise (https://api.slack.com/messaging/webhooks#handling_errors): `400
 * invalid_payload`, `403 invalid_token`, `404 no_service`, `404 channel_not_found`, `410
 * channel_is_archived`, … — all permanent: the webhook must be fixed. 429 (rate limited, with
 * `Retry-After`) and 5xx are transient.
 * @module
 */
import type { Notifier, NotifierContext, NotifierEntry, NotifierType, DeliveryOutcome } from '../contract.js'
import type { RunEvent } from '../../model.js'
import { templateFor } from '../contract.js'
import { compileTemplate } from '../template.js'
import { classifyStatus, postJson, shortBody, type HttpAnswer } from '../http.js'
import { checkMessageArgument } from './arguments.js'
import { checkHttpUrl } from './url-argument.js'

/** What a Slack webhook's answer means: delivered only on 2xx with the body `ok`. */
export function classifySlackAnswer(answer: HttpAnswer): DeliveryOutcome {
  const outcome = classifyStatus(answer)
  if (outcome.kind !== 'delivered') return outcome
  if (answer.body.trim() === 'ok') return outcome
  // A 2xx that is not Slack's `ok` means the URL is not a Slack webhook (a proxy, a login page):
  // trying again would not change that.
  return { kind: 'permanent', error: `HTTP ${answer.status} without Slack's "ok": ${shortBody(answer.body) || '(empty body)'}` }
}

export const slackType: NotifierType = {
  type: 'slack',
  secretArguments: ['url'],
  validate(args) {
    return checkMessageArgument(args, { url: checkHttpUrl('slack', 'url', args['url']) })
  },
  create(entry: NotifierEntry, _context: NotifierContext): Notifier {
    const url = String(entry.arguments['url'])
    return {
      entry,
      render: (event: RunEvent) => compileTemplate(templateFor(entry, event.kind)).render(event),
      send: (_event, rendered, signal) => postJson({ url, body: JSON.stringify({ text: rendered }), signal, classify: classifySlackAnswer }),
    }
  },
}
