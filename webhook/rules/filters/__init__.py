"""kube-scheduler's Filter plugins, one module each, as they judge the migration target pod.

- `resources`: NodeResourcesFit (every requested resource and the pod count).
- `node_affinity`: NodeAffinity (nodeSelector and required node affinity).
- `taints`: TaintToleration (NoSchedule and NoExecute).
- `pod_affinity`: InterPodAffinity (required pod affinity and anti-affinity, both directions).

NodeUnschedulable is not here: Harvester's NodeCordoned (`rules.harvester`) refuses every cordoned
node, also one whose taint the VM tolerates, so it decides first and more strictly.
"""
