# %% [markdown]
# # Placeholder for 01_binary_ep
#
# Written on branch `tutorials`; this stub only lets the `docsite` branch build.

# %%
print("placeholder")
