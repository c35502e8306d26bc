"""Every VM blocker of DESIGN, on Harvester-shaped VMIs, through evaluate_migration."""

from tests.unit import rules_objects as o
from webhook.cluster.state import ClusterState
from webhook.rules import evaluate_migration


def report_for(vmi, *extra, vmim=None):
    objs = [x for x in o.cluster(*extra) if x["kind"] != "VirtualMachineInstance"] + [vmi]
    return evaluate_migration(ClusterState.from_objects(objs), "default", "vm1", vmim=vmim)


def codes(report):
    return [b.code for b in report.blockers]


def test_clean_vm_has_no_blockers_and_is_allowed():
    report = report_for(o.vmi())
    assert report.blockers == ()
    assert report.allowed
    assert report.eligible_nodes == ["node-2"]


def test_management_network_bridge():
    vmi = o.vmi()
    vmi["spec"]["domain"]["devices"]["interfaces"][0] = {"name": "default", "bridge": {}}
    report = report_for(vmi)
    (b,) = report.blockers
    assert b.code == "ManagementNetworkBridge"
    assert b.field == "spec.domain.devices.interfaces[0]"
    assert "'default'" in b.message and "masquerade" in b.message
    assert not report.allowed


def test_bridge_on_vlan_network_is_fine_and_annotation_allows_pod_bridge():
    vmi = o.vmi()  # nic-1 is a bridge on a multus network
    assert report_for(vmi).blockers == ()
    vmi["spec"]["domain"]["devices"]["interfaces"][0] = {"name": "default", "bridge": {}}
    vmi["metadata"]["annotations"]["kubevirt.io/allow-pod-bridge-network-live-migration"] = ""
    assert report_for(vmi).blockers == ()


def test_cdrom_with_volume_blocks_and_empty_cdrom_does_not():
    vmi = o.vmi()
    vmi["spec"]["domain"]["devices"]["disks"].append(
        {"name": "cdrom-0", "cdrom": {"bus": "sata", "readonly": True}}
    )
    assert report_for(vmi).blockers == ()  # ejected: disk without volume
    vmi["spec"]["volumes"].append(
        {"name": "cdrom-0", "persistentVolumeClaim": {"claimName": "ubuntu-iso"}}
    )
    (b,) = report_for(vmi).blockers
    assert b.code == "CDROMVolume"
    assert b.field == "spec.domain.devices.disks[1]"
    assert "'cdrom-0'" in b.message and "ubuntu-iso" in b.message and "eject" in b.message


def test_container_disk_volume():
    vmi = o.vmi()
    vmi["spec"]["volumes"][0] = {"name": "disk-0", "containerDisk": {"image": "fedora:40"}}
    (b,) = report_for(vmi).blockers
    assert (b.code, b.field) == ("ContainerDiskVolume", "spec.volumes[0]")
    assert "'disk-0'" in b.message and "fedora:40" in b.message and "remove" in b.message


def test_pci_devices_and_gpus_each_named():
    vmi = o.vmi()
    devices = vmi["spec"]["domain"]["devices"]
    devices["hostDevices"] = [
        {"name": "node-1-000008000", "deviceName": "nvidia.com/TU104GL_TESLA_T4"},
        {"name": "node-1-usb1", "deviceName": "kubevirt.io/usb-0781-5581"},
    ]
    devices["gpus"] = [{"name": "vgpu1", "deviceName": "nvidia.com/NVIDIA_A2-2Q"}]
    blockers = report_for(vmi).blockers
    assert [b.code for b in blockers] == ["PCIDevicePassthrough"] * 3
    assert [b.field for b in blockers] == [
        "spec.domain.devices.hostDevices[0]",
        "spec.domain.devices.hostDevices[1]",
        "spec.domain.devices.gpus[0]",
    ]
    assert "nvidia.com/TU104GL_TESLA_T4" in blockers[0].message
    assert "'vgpu1'" in blockers[2].message


def test_node_pinned():
    vmi = o.vmi()
    vmi["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "node-1"}
    report = report_for(vmi)
    assert codes(report) == ["NodePinned"]
    assert report.blockers[0].field == "spec.nodeSelector[kubernetes.io/hostname]"
    assert "'node-1'" in report.blockers[0].message


def test_vmi_not_running_phase():
    (b,) = report_for(o.vmi(phase="Scheduling")).blockers
    assert b.code == "VMINotRunning" and "Scheduling" in b.message and "start" in b.message


def test_vmi_missing_is_not_running_without_node_evaluation():
    objs = [x for x in o.cluster() if x["kind"] != "VirtualMachineInstance"]
    report = evaluate_migration(ClusterState.from_objects(objs), "default", "vm1", target="nope")
    assert codes(report) == ["VMINotRunning"]
    assert report.nodes == () and report.timeouts is None and report.source_node is None
    assert [p.code for p in report.problems()] == ["VMINotRunning"]  # no TargetNotFound
    assert not report.allowed


def test_migration_in_progress_names_it_but_ignores_final_and_own():
    running = o.vmim("mig-old", phase="Running")
    done = o.vmim("mig-done", phase="Succeeded")
    failed = o.vmim("mig-failed", phase="Failed")
    other_vmi = o.vmim("mig-other", vmi_name="vm2", phase="Running")
    report = report_for(o.vmi(), running, done, failed, other_vmi)
    (b,) = report.blockers
    assert b.code == "MigrationInProgress" and "mig-old" in b.message and "abort" in b.message
    # the VMIM being admitted (already in the cache) never counts
    assert report_for(o.vmi(), running, vmim=o.vmim("mig-old")).blockers == ()
    pending = o.vmim("mig-pending")  # no status yet: in progress
    assert codes(report_for(o.vmi(), pending)) == ["MigrationInProgress"]


def test_not_live_migratable_repeats_kubevirt():
    cond = {
        "type": "LiveMigratable",
        "status": "False",
        "reason": "DisksNotLiveMigratable",
        "message": "PVC vm1-disk-0 is not shared",
    }
    (b,) = report_for(o.vmi(conditions=[cond])).blockers
    assert b.code == "NotLiveMigratable" and b.field == "status.conditions[0]"
    assert "DisksNotLiveMigratable" in b.message and "PVC vm1-disk-0 is not shared" in b.message


def test_missing_nad_is_named():
    vmi = o.vmi()
    vmi["spec"]["networks"][1]["multus"]["networkName"] = "vlan300"  # bare name: VMI namespace
    (b,) = report_for(vmi).blockers
    assert (b.code, b.field) == ("NetworkUnavailable", "spec.networks[1]")
    assert "default/vlan300" in b.message and "'nic-1'" in b.message


def test_all_blockers_at_once_in_design_order():
    vmi = o.vmi(phase="Paused")
    devices = vmi["spec"]["domain"]["devices"]
    devices["interfaces"][0] = {"name": "default", "bridge": {}}
    devices["disks"].append({"name": "cd", "cdrom": {"bus": "sata"}})
    devices["hostDevices"] = [{"name": "gpu", "deviceName": "nvidia.com/TU104GL_TESLA_T4"}]
    vmi["spec"]["volumes"] += [
        {"name": "cd", "persistentVolumeClaim": {"claimName": "iso"}},
        {"name": "cd2", "containerDisk": {"image": "x"}},
    ]
    vmi["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "node-1"}
    vmi["status"]["conditions"][1]["status"] = "False"
    report = report_for(vmi, o.vmim("m", phase="Running"))
    assert codes(report) == [
        "ManagementNetworkBridge",
        "CDROMVolume",
        "ContainerDiskVolume",
        "PCIDevicePassthrough",
        "NodePinned",
        "VMINotRunning",
        "MigrationInProgress",
        "NotLiveMigratable",
    ]
    assert [p.code for p in report.problems()][:8] == codes(report)
