// Medusa's own admin client against a stepwork server: list and retrieve workflow executions.
// Usage: STEPWORK_URL=http://127.0.0.1:9000 STEPWORK_KEY=sk_... STEPWORK_TX=tx node check.mjs
// Prints one JSON line: what the SDK got back (tests/http/test_js_sdk.py checks it).
import Medusa from "@medusajs/js-sdk"

const baseUrl = process.env.STEPWORK_URL
const sdk = new Medusa({ baseUrl, apiKey: process.env.STEPWORK_KEY })
const transactionId = process.env.STEPWORK_TX

const list = await sdk.admin.workflowExecution.list({
  transaction_id: [transactionId],
  state: ["done", "failed"],
  limit: 10,
  offset: 0,
  order: "-created_at",
})
const first = list.workflow_executions[0]
const { workflow_execution } = await sdk.admin.workflowExecution.retrieve(first.id)

let wrongKey = null
try {
  await new Medusa({ baseUrl, apiKey: "sk_not_a_key" }).admin.workflowExecution.list()
} catch (error) {
  wrongKey = { status: error.status, message: error.message }
}

let missing = null
try {
  await sdk.admin.workflowExecution.retrieve("wf_exec_missing")
} catch (error) {
  missing = { status: error.status, message: error.message }
}

console.log(JSON.stringify({
  count: list.count,
  limit: list.limit,
  offset: list.offset,
  listed: list.workflow_executions.map((e) => ({ id: e.id, transaction_id: e.transaction_id, state: e.state })),
  retrieved: {
    id: workflow_execution.id,
    state: workflow_execution.state,
    steps: Object.keys(workflow_execution.execution.steps),
    invoke: workflow_execution.context.data.invoke,
  },
  wrongKey,
  missing,
}))
