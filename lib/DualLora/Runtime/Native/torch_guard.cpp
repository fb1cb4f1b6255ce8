// LibTorch error guard for TorchSharp 0.107.0 on Linux.
//
// Most of libLibTorchSharp's entry points catch LibTorch's C++ exceptions, keep the message for
// THSTorch_get_and_reset_last_err and return null, which TorchSharp turns into an ExternalException.
// The entry points below let the exception escape instead (some have no catch at all, others do
// part of their work outside it), so it unwinds into managed frames and std::terminate
// aborts the process. This library exports the same names; each calls the original inside
// try/catch and, on failure, keeps the message and returns what TorchSharp reads as a failure
// (null, or nothing for the void entry points after which TorchSharp always checks for errors).
// THSTorch_get_and_reset_last_err is wrapped too, so TorchSharp reads these messages as its own.
//
// TorchRuntime (TorchRuntime.cs) loads libLibTorchSharp.so first, then this library, whose
// dependency on libLibTorchSharp.so is satisfied by that already-loaded copy (matched by soname),
// and resolves TorchSharp's P/Invokes through this library's handle: a lookup finds the wrappers
// here first and every other entry point in the dependency.
//
// Only entry points whose managed callers check for errors are wrapped: a value-returning one that
// TorchSharp does not check (such as THSTorch_scalar_to_float64) would turn an abort into a silent
// wrong value.

#include <dlfcn.h>

#include <cstdint>
#include <exception>
#include <string>

#define GUARD_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

using Handle = void*;  // TorchSharp's Tensor, Scalar and Generator are opaque pointers here.
using Allocator = Handle* (*)(std::size_t length);

thread_local bool error_pending = false;
thread_local std::string error_message;

void fail(const std::string& message)
{
    error_message = message;
    error_pending = true;
}

void* torchsharp_library()
{
    static void* const library = dlopen("libLibTorchSharp.so", RTLD_LAZY | RTLD_NOLOAD);
    return library;
}

template <typename Function>
Function original(const char* name)
{
    void* library = torchsharp_library();
    return library == nullptr ? nullptr : reinterpret_cast<Function>(dlsym(library, name));
}

// Calls the original entry point; a C++ exception becomes a kept message and on_failure.
template <typename Result, typename... Parameters, typename... Arguments>
Result call_guarded(Result (*function)(Parameters...), const char* name, Result on_failure, Arguments... arguments)
{
    error_pending = false;
    if (function == nullptr)
    {
        fail(std::string(name) + " was not found in the loaded libLibTorchSharp.so");
        return on_failure;
    }
    try
    {
        return function(arguments...);
    }
    catch (const std::exception& e)
    {
        fail(e.what());
    }
    catch (...)
    {
        fail(std::string("a C++ exception of unknown type escaped ") + name);
    }
    return on_failure;
}

template <typename... Parameters, typename... Arguments>
void call_guarded_void(void (*function)(Parameters...), const char* name, Arguments... arguments)
{
    error_pending = false;
    if (function == nullptr)
    {
        fail(std::string(name) + " was not found in the loaded libLibTorchSharp.so");
        return;
    }
    try
    {
        function(arguments...);
    }
    catch (const std::exception& e)
    {
        fail(e.what());
    }
    catch (...)
    {
        fail(std::string("a C++ exception of unknown type escaped ") + name);
    }
}

}  // namespace

GUARD_EXPORT const char* THSTorch_get_and_reset_last_err()
{
    static const auto reset = original<const char* (*)()>("THSTorch_get_and_reset_last_err");
    if (error_pending)
    {
        error_pending = false;
        return error_message.c_str();  // valid until this thread's next failure; TorchSharp copies it at once
    }
    return reset == nullptr ? nullptr : reset();
}

// No catch at all: shape and dtype mismatches abort.
GUARD_EXPORT Handle THSTensor_matmul(Handle left, Handle right)
{
    static const auto function = original<Handle (*)(Handle, Handle)>("THSTensor_matmul");
    return call_guarded(function, "THSTensor_matmul", Handle{nullptr}, left, right);
}

// Indexing builds its slices outside the catch: a slice step of 0 aborts.
GUARD_EXPORT Handle THSTensor_index(Handle tensor, const int64_t* starts, const int64_t* ends, const int64_t* steps,
                                    const Handle* tensors, int32_t length)
{
    static const auto function = original<Handle (*)(Handle, const int64_t*, const int64_t*, const int64_t*, const Handle*, int32_t)>("THSTensor_index");
    return call_guarded(function, "THSTensor_index", Handle{nullptr}, tensor, starts, ends, steps, tensors, length);
}

GUARD_EXPORT void THSTensor_index_put_(Handle tensor, const int64_t* starts, const int64_t* ends, const int64_t* steps,
                                       const Handle* tensors, int32_t length, Handle value, bool accumulate)
{
    static const auto function = original<void (*)(Handle, const int64_t*, const int64_t*, const int64_t*, const Handle*, int32_t, Handle, bool)>("THSTensor_index_put_");
    call_guarded_void(function, "THSTensor_index_put_", tensor, starts, ends, steps, tensors, length, value, accumulate);
}

GUARD_EXPORT void THSTensor_index_put_scalar_(Handle tensor, const int64_t* starts, const int64_t* ends, const int64_t* steps,
                                              const Handle* tensors, int32_t length, Handle value)
{
    static const auto function = original<void (*)(Handle, const int64_t*, const int64_t*, const int64_t*, const Handle*, int32_t, Handle)>("THSTensor_index_put_scalar_");
    call_guarded_void(function, "THSTensor_index_put_scalar_", tensor, starts, ends, steps, tensors, length, value);
}

// Computes a full variance outside the catch first: an integer tensor aborts.
GUARD_EXPORT Handle THSTensor_var_along_dimensions(Handle tensor, const int64_t* dimensions, int32_t length, bool unbiased, bool keepdim)
{
    static const auto function = original<Handle (*)(Handle, const int64_t*, int32_t, bool, bool)>("THSTensor_var_along_dimensions");
    return call_guarded(function, "THSTensor_var_along_dimensions", Handle{nullptr}, tensor, dimensions, length, unbiased, keepdim);
}

// No catch: a dimension out of range aborts.
GUARD_EXPORT void THSTensor_cummax(Handle tensor, Allocator allocator, int64_t dim)
{
    static const auto function = original<void (*)(Handle, Allocator, int64_t)>("THSTensor_cummax");
    call_guarded_void(function, "THSTensor_cummax", tensor, allocator, dim);
}

GUARD_EXPORT void THSTensor_cummin(Handle tensor, Allocator allocator, int64_t dim)
{
    static const auto function = original<void (*)(Handle, Allocator, int64_t)>("THSTensor_cummin");
    call_guarded_void(function, "THSTensor_cummin", tensor, allocator, dim);
}

// No catch: torch.autograd.grad of something that does not require grad aborts.
GUARD_EXPORT void THSAutograd_grad(Handle* outputs, int64_t output_count, Handle* inputs, int64_t input_count,
                                   Handle* grad_outputs, int64_t grad_output_count,
                                   bool retain_graph, bool create_graph, bool allow_unused, Allocator allocator)
{
    static const auto function = original<void (*)(Handle*, int64_t, Handle*, int64_t, Handle*, int64_t, bool, bool, bool, Allocator)>("THSAutograd_grad");
    call_guarded_void(function, "THSAutograd_grad", outputs, output_count, inputs, input_count, grad_outputs, grad_output_count,
                      retain_graph, create_graph, allow_unused, allocator);
}

// No catch: zero threads, or interop threads set after parallel work started, abort.
GUARD_EXPORT void THSTorch_set_num_threads(int32_t threads)
{
    static const auto function = original<void (*)(int32_t)>("THSTorch_set_num_threads");
    call_guarded_void(function, "THSTorch_set_num_threads", threads);
}

GUARD_EXPORT void THSTorch_set_num_interop_threads(int32_t threads)
{
    static const auto function = original<void (*)(int32_t)>("THSTorch_set_num_interop_threads");
    call_guarded_void(function, "THSTorch_set_num_interop_threads", threads);
}

// No catch: a state tensor of the wrong size or dtype aborts.
GUARD_EXPORT void THSGenerator_set_rng_state(Handle generator, Handle state)
{
    static const auto function = original<void (*)(Handle, Handle)>("THSGenerator_set_rng_state");
    call_guarded_void(function, "THSGenerator_set_rng_state", generator, state);
}
