#!/usr/bin/env bash
# Regenerate mad_sim/data/proto/*_pb2.py from the .proto files beside them.
#
#   scripts/gen_protos.sh            (uses $PYTHON, default: python3, with grpcio-tools)
#
# protoc writes a check that the installed protobuf runtime is at least as new
# as protoc itself (google.protobuf.runtime_version, protobuf >= 5.26 only).
# The generated code only uses the descriptor-pool + builder API, which every
# protobuf since 3.20 provides, so that check is removed: the committed modules
# then import under protobuf 4.25 .. 7.x, the range setup.cfg allows.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
cd "$root"
protos=(mad_sim/data/proto/map.proto mad_sim/data/proto/scenario.proto
        mad_sim/data/proto/sim_agents_submission.proto mad_sim/data/proto/dataset.proto)
"$python" -m grpc_tools.protoc -I. --python_out=. "${protos[@]}"
for proto in "${protos[@]}"; do
  out="${proto%.proto}_pb2.py"
  "$python" - "$out" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
# Drop the runtime-version import and its Validate...(...) call.
text = re.sub(r"from google\.protobuf import runtime_version as _runtime_version\n", "", text)
text = re.sub(r"_runtime_version\.ValidateProtobufRuntimeVersion\([^)]*\)\n", "", text, flags=re.S)
text = text.replace('"""Generated protocol buffer code."""',
                    '"""Generated protocol buffer code (runtime-version check removed by scripts/gen_protos.sh)."""')
open(path, "w").write(text)
PY
  echo "wrote $out"
done
