#!/bin/sh
# Runs tests/node/tools.mjs - tool calling and structured output through the
# official OpenAI and Anthropic clients, the Vercel AI SDK and LangChain -
# against hearthd serving the random-weights synth-qwen2-45m model, once per
# tool-call format: the built-in chatml template (Hermes style), and the
# real Qwen2.5, Llama 3.1, Mistral Nemo and Mistral Small 3.2 templates from
# ../shared/templates. Then the model's own template, which knows no tools:
# a request with tools is a clear 400. Exit 77 (skip) when the test data,
# node or the npm packages are missing.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/hearthd.sh"
hearthd_needs openai
model="$data/models/synth-qwen2-45m-Q4_K_M.gguf"
for dep in "$model" "$data/templates" "$here/node/node_modules/ai" \
           "$here/node/node_modules/@langchain/openai"; do
    if [ ! -e "$dep" ]; then echo "SKIP: $dep missing"; exit 77; fi
done
rc=0
for pair in chatml:hermes Qwen-Qwen2.5-7B-Instruct:hermes \
            meta-llama-Llama-3.1-8B-Instruct:llama3 \
            mistralai-Mistral-Nemo-Instruct-2407:mistral \
            Mistral-Small-3.2-24B-Instruct-2506:mistral-args; do
    name=${pair%%:*}
    format=${pair#*:}
    tmpl=$name
    [ "$name" = chatml ] || tmpl="$data/templates/$name.jinja"
    hearthd_start --model "$model" --chat-template "$tmpl"
    HEARTH_URL="http://127.0.0.1:$port" HEARTH_TEMPLATE="$name" HEARTH_TOOL_FORMAT="$format" \
        node "$here/node/tools.mjs" || rc=1
    hearthd_stop
    if [ $hearthd_status -ne 0 ]; then
        echo "hearthd exited with $hearthd_status"; cat "$log"; rc=1
    fi
done

# the model's own template has no tools: 400, naming the field
hearthd_start --model "$model"
body='{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}]}'
out=$(curl -s -w ' %{http_code}' "http://127.0.0.1:$port/v1/chat/completions" -d "$body")
case "$out" in
*'"param":"tools"'*'"code":"unsupported_parameter"'*' 400') echo "ok   tools on a template without tools: 400";;
*) echo "FAIL tools on a template without tools: $out"; rc=1;;
esac
hearthd_stop
if [ $hearthd_status -ne 0 ]; then echo "hearthd exited with $hearthd_status"; cat "$log"; rc=1; fi
exit $rc
