// Command kubevirt-manifests prints, as YAML documents, what KubeVirt's virt-operator would
// install, by calling KubeVirt's own constructors:
//
//	kubevirt-manifests crds [yaml|json]      every CustomResourceDefinition (the KubeVirt CR's and the
//	                                         ones GenerateCurrentInstallStrategy lists), schemas included
//	kubevirt-manifests webhooks [yaml|json]  virt-api's mutating and validating webhook configurations
//
// as YAML documents (the default), or as one JSON List (quicker to load than 4 MB of YAML), so the
// tests and the demo run on exactly KubeVirt's schemas and webhook rules. Built by
// hack/build-kubevirt.sh inside a wrapper module that requires kubevirt.io/kubevirt at the
// pinned version.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	extv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"kubevirt.io/kubevirt/pkg/virt-operator/resource/generate/components"
)

// The namespace virt-operator installs into; the webhooks name its virt-api Service there.
const installNamespace = "kubevirt"

// The KubeVirt CRD, then the ones GenerateCurrentInstallStrategy lists, in its order.
var crdConstructors = []func() (*extv1.CustomResourceDefinition, error){
	components.NewKubeVirtCrd,
	components.NewVirtualMachineInstanceCrd, components.NewPresetCrd, components.NewReplicaSetCrd,
	components.NewVirtualMachineCrd, components.NewVirtualMachineInstanceMigrationCrd,
	components.NewVirtualMachineSnapshotCrd, components.NewVirtualMachineSnapshotContentCrd,
	components.NewVirtualMachineRestoreCrd, components.NewVirtualMachineInstancetypeCrd,
	components.NewVirtualMachineClusterInstancetypeCrd, components.NewVirtualMachinePoolCrd,
	components.NewMigrationPolicyCrd, components.NewVirtualMachinePreferenceCrd,
	components.NewVirtualMachineClusterPreferenceCrd, components.NewVirtualMachineExportCrd,
	components.NewVirtualMachineCloneCrd, components.NewVirtualMachineBackupCrd,
	components.NewVirtualMachineBackupTrackerCrd,
}

func crds() ([]any, error) {
	var objects []any
	for _, construct := range crdConstructors {
		crd, err := construct()
		if err != nil {
			return nil, err
		}
		crd.APIVersion, crd.Kind = "apiextensions.k8s.io/v1", "CustomResourceDefinition"
		objects = append(objects, crd)
	}
	return objects, nil
}

func webhooks() ([]any, error) {
	mutating := components.NewVirtAPIMutatingWebhookConfiguration(installNamespace)
	mutating.APIVersion, mutating.Kind = "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"
	validating := components.NewVirtAPIValidatingWebhookConfiguration(installNamespace)
	validating.APIVersion, validating.Kind = "admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"
	return []any{mutating, validating}, nil
}

// plain is the object without the server-owned fields KubeVirt's own tools/util marshaller drops.
func plain(object any) (map[string]any, error) {
	raw, err := json.Marshal(object)
	if err != nil {
		return nil, err
	}
	var u unstructured.Unstructured
	if err := json.Unmarshal(raw, &u.Object); err != nil {
		return nil, err
	}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "status")
	return u.Object, nil
}

func write(objects []any, asJSON bool) error {
	items := make([]any, 0, len(objects))
	for _, object := range objects {
		item, err := plain(object)
		if err != nil {
			return err
		}
		items = append(items, item)
	}
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	}
	for _, item := range items {
		out, err := yaml.Marshal(item)
		if err != nil {
			return err
		}
		fmt.Printf("---\n%s", out)
	}
	return nil
}

func main() {
	kinds := map[string]func() ([]any, error){"crds": crds, "webhooks": webhooks}
	args := append(os.Args[1:], "yaml")
	if len(args) < 2 || len(args) > 3 || kinds[args[0]] == nil || (args[1] != "yaml" && args[1] != "json") {
		fmt.Fprintln(os.Stderr, "usage: kubevirt-manifests crds|webhooks [yaml|json]")
		os.Exit(2)
	}
	asJSON := args[1] == "json"
	objects, err := kinds[args[0]]()
	if err == nil {
		err = write(objects, asJSON)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubevirt-manifests %s: %v\n", args[0], err)
		os.Exit(1)
	}
}
