# Source this (`. .ci/gpu-env.sh`) to run cappa's GPU backend on lavapipe, Mesa's software
# Vulkan (install it with `apt-get install mesa-vulkan-drivers libvulkan1`).
export VK_DRIVER_FILES=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json
# Mesa complains on every start without a runtime directory.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-$(id -u)}"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
