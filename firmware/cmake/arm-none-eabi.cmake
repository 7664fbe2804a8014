# Toolchain file: bare-metal Arm Cortex-M4F (arm-none-eabi-gcc + newlib-nano).
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
# No OS to run a test executable on: let CMake's compiler checks build a static library.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_ASM_COMPILER arm-none-eabi-gcc)
set(CMAKE_AR arm-none-eabi-ar)
set(CMAKE_RANLIB arm-none-eabi-ranlib)
set(CMAKE_SIZE arm-none-eabi-size)
set(CMAKE_OBJCOPY arm-none-eabi-objcopy)

# ES_CPU_FLAGS (a cache variable) builds a tree for another core: firmware/build.sh makes
# build/mps2-an386-m0 with "-mcpu=cortex-m0 -mthumb -mfloat-abi=soft" (the M0 runner).
if(NOT ES_CPU_FLAGS)
  set(ES_CPU_FLAGS "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16")
endif()
# In the *_INIT flags, so that every target (and CMake's own checks) gets them: mixing
# soft- and hard-float objects fails at link time ("uses VFP register arguments").
set(CMAKE_C_FLAGS_INIT "${ES_CPU_FLAGS} -ffunction-sections -fdata-sections")
set(CMAKE_ASM_FLAGS_INIT "${ES_CPU_FLAGS}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "${ES_CPU_FLAGS} --specs=nano.specs --specs=nosys.specs -Wl,--gc-sections")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
